"""The notification outbox of the PostgreSQL store: rows of `fleetward.outbox`.

The same rules as the state directory's `outbox.json` (`store.outbox`): entries
come back in the order they were added (`seq`), an id already kept is not added
again, and past the limit the oldest are dropped. Each call is one transaction
under a transaction-level advisory lock, so two replicas (or a replica's run and
its senders) adding and removing at once never interleave an add with its
eviction. The outbox is apart from the objects: it never moves the serial and is
written without the writer lock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from psycopg.types.json import Json

from fleetward.store.base import OUTBOX_LIMIT, OutboxEntry
from fleetward.store.pg_log import dumps
from fleetward.store.pg_schema import LOCK_CLASS, OUTBOX_LOCK, SCHEMA, Database
from fleetward.store.pg_session import Connection

_INSERT = f"""INSERT INTO {SCHEMA}.outbox (id, target, event, created_at)
    VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"""
# Each target's oldest entries past `limit`: `store.base.outbox_added`'s bound, in SQL.
_EVICT = f"""
    DELETE FROM {SCHEMA}.outbox WHERE id IN (
        SELECT id FROM (
            SELECT id, row_number() OVER (PARTITION BY target ORDER BY seq DESC) AS newer
            FROM {SCHEMA}.outbox) AS ranked
        WHERE newer > %s)
    RETURNING target"""
_SELECT = f"SELECT id, target, event, created_at FROM {SCHEMA}.outbox"
_NOTIFY_UPSERT = f"""INSERT INTO {SCHEMA}.notify_state (id, doc) VALUES (1, %s)
    ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc"""


def outbox_in(conn: Connection) -> list[OutboxEntry]:
    """Every kept entry, oldest first."""
    return _entries(conn.execute(f"{_SELECT} ORDER BY seq").fetchall())


def write_outbox(conn: Connection, entries: Sequence[OutboxEntry], limit: int) -> dict[str, int]:
    """Append `entries` (ids kept are skipped) and evict each target's past `limit`, in
    the caller's transaction; how many were evicted, per target."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, OUTBOX_LOCK))
    with conn.cursor() as cur:
        cur.executemany(
            _INSERT,
            [
                (e.entry_id, e.target, Json(dict(e.event), dumps), e.created_at)
                for e in _unique(entries)
            ],
        )
    dropped: dict[str, int] = {}
    for (target,) in conn.execute(_EVICT, (limit,)).fetchall():
        dropped[str(target)] = dropped.get(str(target), 0) + 1
    return dropped


class PostgresOutbox:
    """The outbox in `fleetward.outbox`; the store's `outbox_*` methods delegate here."""

    def __init__(self, db: Database, limit: int = OUTBOX_LIMIT) -> None:
        self.db = db
        self.limit = limit

    def add(self, entries: Sequence[OutboxEntry]) -> dict[str, int]:
        if not entries:
            return {}
        with self.db.writing("queue notifications") as conn:
            return write_outbox(conn, entries, self.limit)

    def pending(self, target: str | None = None, limit: int | None = None) -> list[OutboxEntry]:
        with self.db.reading("read the notification outbox") as conn:
            if conn is None:
                return []
            where = "" if target is None else " WHERE target = %s"
            params: list[Any] = [] if target is None else [target]
            if limit is not None:
                params.append(max(limit, 0))
            query = f"{_SELECT}{where} ORDER BY seq{'' if limit is None else ' LIMIT %s'}"
            return _entries(conn.execute(query, params).fetchall())

    def notify_state(self) -> dict[str, Any] | None:
        with self.db.reading("read the notification state") as conn:
            if conn is None:
                return None
            row = conn.execute(f"SELECT doc FROM {SCHEMA}.notify_state WHERE id = 1").fetchone()
        return dict(row[0]) if row is not None and isinstance(row[0], dict) else None

    def set_notify_state(self, doc: Mapping[str, Any]) -> None:
        with self.db.writing("keep the notification state") as conn:
            conn.execute(_NOTIFY_UPSERT, (Json(dict(doc), dumps),))

    def remove(self, entry_ids: Collection[str]) -> None:
        if not entry_ids:
            return
        with self.db.writing("forget delivered notifications") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, OUTBOX_LOCK))
            conn.execute(f"DELETE FROM {SCHEMA}.outbox WHERE id = ANY(%s)", (list(entry_ids),))


def _unique(entries: Iterable[OutboxEntry]) -> list[OutboxEntry]:
    """The first of each id, in order (one INSERT per id: a repeat is not queued twice)."""
    seen: set[str] = set()
    first: list[OutboxEntry] = []
    for entry in entries:
        if entry.entry_id not in seen:
            seen.add(entry.entry_id)
            first.append(entry)
    return first


def _entries(rows: Iterable[tuple[Any, ...]]) -> list[OutboxEntry]:
    return [
        OutboxEntry(str(entry_id), str(target), dict(event), str(created))
        for entry_id, target, event, created in rows
    ]


__all__ = ["PostgresOutbox", "outbox_in", "write_outbox"]
