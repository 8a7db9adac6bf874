"""The rollback pin of the PostgreSQL store: the one row of `fleetward.pin`.

The same rules as the state directory's `pin.json` (`store.pin`): apart from the
objects, so setting or lifting a pin never moves the serial; written by the
holder of the writer lock, in its session (fenced like an apply); read as it is.
Replicas share it, so a rollback through one replica pins them all.
"""

from __future__ import annotations

from psycopg.types.json import Json

from fleetward.errors import StoreError
from fleetward.store.base import Pin
from fleetward.store.pg_log import dumps
from fleetward.store.pg_schema import SCHEMA
from fleetward.store.pg_session import Connection

_UPSERT = f"""INSERT INTO {SCHEMA}.pin (id, doc) VALUES (1, %s)
    ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc"""


def pin_in(conn: Connection, location: str) -> Pin | None:
    """The pin the database keeps, or None."""
    row = conn.execute(f"SELECT doc FROM {SCHEMA}.pin WHERE id = 1").fetchone()
    if row is None:
        return None
    try:
        return Pin.from_dict(row[0])
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError.one(
            f"The rollback pin in {location} is corrupt",
            f"Row 1 of {SCHEMA}.pin cannot be read as a pin ({exc!r}).",
            f"Run fleetward resume --store {location} to lift it, or DELETE the row.",
            location=location,
        ) from exc


def write_pin(conn: Connection, pin: Pin | None) -> None:
    """Keep `pin` (None: lift it), in the caller's transaction."""
    if pin is None:
        conn.execute(f"DELETE FROM {SCHEMA}.pin")
    else:
        conn.execute(_UPSERT, (Json(pin.to_dict(), dumps),))
