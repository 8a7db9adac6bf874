"""Objects as rows of `fleetward.objects`, and back: the column list, the upsert, COPY.

One row per object, `spec` and `status` in JSON columns of their own; `seq` keeps the
store's order. Large change sets go through COPY (straight into an empty table, else
through a temporary table and one INSERT … ON CONFLICT).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fleetward.model import ObjectKey, ObjectState, StoredObject
from fleetward.store.pg_log import dumps
from fleetward.store.pg_schema import SCHEMA
from fleetward.store.pg_session import Connection

Row = tuple[Any, ...]

COLUMNS = (
    "key, kind, owner, state, spec_hash, generation, applied_revision, created_at, "
    "updated_at, spec, status"
)
SELECT_OBJECTS = f"SELECT {COLUMNS} FROM {SCHEMA}.objects"
UPDATE_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS.split(", ") if c != "key")
UPSERT = f"""INSERT INTO {SCHEMA}.objects ({COLUMNS})
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (key) DO UPDATE SET {UPDATE_SET}"""


def objects_of(rows: Iterable[Row]) -> dict[ObjectKey, StoredObject]:
    objects: dict[ObjectKey, StoredObject] = {}
    for (
        key,
        kind,
        owner,
        state,
        spec_hash,
        generation,
        revision,
        created,
        updated,
        spec,
        status,
    ) in rows:
        objects[ObjectKey(key)] = StoredObject(
            key=ObjectKey(key),
            kind=kind,
            spec=spec,
            status=status or {},
            owner=owner,
            state=ObjectState(state),
            spec_hash=spec_hash,
            generation=int(generation),
            applied_revision=revision,
            created_at=created,
            updated_at=updated,
        )
    return objects


def row_values(obj: StoredObject) -> tuple[Any, ...]:
    return (
        obj.key,
        obj.kind,
        obj.owner,
        obj.state.value,
        obj.spec_hash,
        obj.generation,
        obj.applied_revision,
        obj.created_at,
        obj.updated_at,
        dumps(obj.spec),
        dumps(obj.status),
    )


def copy_objects(conn: Connection, table: str, objects: Sequence[StoredObject]) -> None:
    """COPY `objects` into `table` in order (their `seq` follows it)."""
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy:
        for obj in objects:
            copy.write_row(row_values(obj))


def bulk_upsert(conn: Connection, upserts: Sequence[StoredObject]) -> None:
    """Many upserts: straight into an empty table, else through a temp table, one INSERT."""
    empty = conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {SCHEMA}.objects)").fetchone()
    if empty is not None and empty[0]:
        copy_objects(conn, f"{SCHEMA}.objects", upserts)
        return
    conn.execute(
        f"""CREATE TEMP TABLE fleetward_incoming ON COMMIT DROP AS
            SELECT {COLUMNS} FROM {SCHEMA}.objects WITH NO DATA"""
    )
    conn.execute("ALTER TABLE fleetward_incoming ADD COLUMN ord bigserial")
    copy_objects(conn, "fleetward_incoming", upserts)
    conn.execute(
        f"""INSERT INTO {SCHEMA}.objects ({COLUMNS})
            SELECT {COLUMNS} FROM fleetward_incoming ORDER BY ord
            ON CONFLICT (key) DO UPDATE SET {UPDATE_SET}"""
    )
