"""The operator's switches in the PostgreSQL store: the rollback pin (the one row of
`fleetward.pin`) and the suspension (the one row of `fleetward.suspension`).

The same rules as the state directory's `pin.json` (`store.pin`) and
`suspend.json` (`store.suspension`): apart from the objects, so setting or
lifting either never moves the serial. The pin is written by the holder of the
writer lock, in its session (fenced like an apply); the suspension without the
lock, so `fleetward suspend` never waits for an apply in progress (the daemon
reads it again just before its write). Both are read as they are. Replicas share
them, so a rollback or a suspension through any replica or CLI holds them all.
"""

from __future__ import annotations

from psycopg.types.json import Json

from fleetward.errors import StoreError
from fleetward.store.base import Pin
from fleetward.store.pg_log import dumps
from fleetward.store.pg_schema import SCHEMA
from fleetward.store.pg_session import Connection
from fleetward.store.suspension import Suspension

_UPSERT = """INSERT INTO {table} (id, doc) VALUES (1, %s)
    ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc"""
_PIN = f"{SCHEMA}.pin"
_SUSPENSION = f"{SCHEMA}.suspension"


def pin_in(conn: Connection, location: str) -> Pin | None:
    """The pin the database keeps, or None."""
    row = conn.execute(f"SELECT doc FROM {_PIN} WHERE id = 1").fetchone()
    if row is None:
        return None
    try:
        return Pin.from_dict(row[0])
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError.one(
            f"The rollback pin in {location} is corrupt",
            f"Row 1 of {_PIN} cannot be read as a pin ({exc!r}).",
            f"Run fleetward resume --store {location} to lift it, or DELETE the row.",
            location=location,
        ) from exc


def write_pin(conn: Connection, pin: Pin | None) -> None:
    """Keep `pin` (None: lift it), in the caller's transaction."""
    if pin is None:
        conn.execute(f"DELETE FROM {_PIN}")
    else:
        conn.execute(_UPSERT.format(table=_PIN), (Json(pin.to_dict(), dumps),))


def suspension_in(conn: Connection, location: str) -> Suspension | None:
    """The suspension the database keeps, or None."""
    row = conn.execute(f"SELECT doc FROM {_SUSPENSION} WHERE id = 1").fetchone()
    if row is None:
        return None
    doc = row[0]
    try:
        if isinstance(doc, dict):
            return Suspension.from_dict(doc)
        why = "it holds no JSON object"
    except ValueError as exc:
        why = str(exc)
    raise StoreError.one(
        f"The suspension in {location} is corrupt",
        f"Row 1 of {_SUSPENSION} cannot be read as a suspension ({why}).",
        f"Run fleetward resume --store {location} to remove it (and suspend again if "
        "wanted), or DELETE the row.",
        location=location,
    )


def write_suspension(conn: Connection, suspension: Suspension | None) -> None:
    """Keep `suspension` (None: resume), in the caller's transaction."""
    if suspension is None:
        conn.execute(f"DELETE FROM {_SUSPENSION}")
    else:
        conn.execute(_UPSERT.format(table=_SUSPENSION), (Json(suspension.to_dict(), dumps),))
