"""The PostgreSQL store (`--store postgresql://…`): one row per object, one transaction
per apply that writes only what changed, fenced by the serial.

An apply locks the meta row (`SELECT … FOR UPDATE`), compares its lineage and
serial with the ones the change set was planned from (`StoreConflict`
otherwise), deletes and upserts only the changed objects — `executemany` for a
few, `COPY` for many — and moves the serial, in one transaction: a crash or a
killed session at any point leaves the state from before it, never a mix.

The writer lock is a session-level advisory lock held by a session of its own.
A write made while this thread holds the lock goes through that very session:
if the session is gone (terminated, server restarted, network cut), so is the
lock, and the write fails instead of landing unfenced. A daemon leader fences
on it the same way.

Reads cache the objects keyed by (lineage, serial, edits): `edits` counts every
statement that changed the objects table, fleetward's or a person's (a trigger,
see `pg_schema`), so drift edited in by hand is seen at the next read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Json

from fleetward.errors import LockTimeout, StoreError
from fleetward.model import ObjectKey, StoredObject, StoreMeta, StoreSnapshot
from fleetward.store.base import (
    HISTORY_LIMIT,
    OUTBOX_LIMIT,
    ChangeSet,
    OutboxEntry,
    Pin,
    StatusChange,
    StoreDump,
    applied_meta,
    check_fence,
    status_change_set,
)
from fleetward.store.operations import OPERATIONS_LIMIT
from fleetward.store.pg_leader import Leadership
from fleetward.store.pg_log import (
    PostgresOperationLog,
    PostgresRejections,
    dumps,
    operations_in,
    rejections_in,
    write_operations,
    write_rejections,
)
from fleetward.store.pg_outbox import PostgresOutbox, outbox_in, write_outbox
from fleetward.store.pg_pin import pin_in, suspension_in, write_pin, write_suspension
from fleetward.store.pg_rows import (
    SELECT_OBJECTS,
    UPSERT,
    bulk_upsert,
    copy_objects,
    objects_of,
    row_values,
)
from fleetward.store.pg_schema import LOCK_CLASS, SCHEMA, WRITER_LOCK, Database
from fleetward.store.pg_session import Connection, store_error
from fleetward.store.suspension import Suspension

BULK = 500  # upserts from this many on go through COPY
_POLL_SECONDS = 0.1
_EMPTY = StoreMeta(lineage=None, serial=0, last_applied_revision=None)

_META = f"SELECT lineage, serial, last_applied_revision, owner_labels, edits FROM {SCHEMA}.meta"
_HOLDER = """
    SELECT a.pid, a.application_name, host(a.client_addr)
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s
      AND l.objid::bigint = %s AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Cached:
    key: tuple[str | None, int, int]  # lineage, serial, edits
    objects: Mapping[ObjectKey, StoredObject]


class PostgresStore:
    """The store in the database `url` names (a `Store`); tables in its `fleetward` schema.

    Opening does no I/O: the first read connects, the first write or `lock`
    creates or migrates the schema. Safe to share between threads.
    """

    def __init__(self, url: str, operations_limit: int = OPERATIONS_LIMIT) -> None:
        self.db = Database(url)
        self.operations = PostgresOperationLog(self.db, operations_limit)
        self.rejections = PostgresRejections(self.db)
        self._outbox = PostgresOutbox(self.db, OUTBOX_LIMIT)
        self.leadership = Leadership(self.db)  # a daemon replica's lead (`pg_leader`)
        self._held = threading.local()  # .conn: the lock's session, in the thread holding it
        self._cached: _Cached | None = None

    @property
    def location(self) -> str:
        return self.db.shown

    @property
    def outbox_limit(self) -> int:
        return self._outbox.limit

    @outbox_limit.setter
    def outbox_limit(self, limit: int) -> None:
        self._outbox.limit = limit

    def close(self) -> None:
        """Close the pooled sessions (a held lock's session closes with its block)."""
        self.db.sessions.close()

    # -- reading ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether fleetward's schema is in the database (a write or `lock` creates it)."""
        with self.db.reading("read") as conn:
            return conn is not None

    def meta(self) -> StoreMeta:
        with self.db.reading("read the store") as conn:
            if conn is None:
                return _EMPTY
            return _meta(_row(conn, _META))[0]

    def read(self) -> StoreSnapshot:
        with self.db.reading("read the store") as conn:
            if conn is None:
                return StoreSnapshot(_EMPTY, {})
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                meta, edits = _meta(_row(conn, _META))
                key = (meta.lineage, meta.serial, edits)
                cached = self._cached
                if cached is not None and cached.key == key:
                    return StoreSnapshot(meta, cached.objects)
                objects = objects_of(conn.execute(f"{SELECT_OBJECTS} ORDER BY seq").fetchall())
        self._cached = _Cached(key, objects)
        return StoreSnapshot(meta, objects)

    def history(self) -> list[dict[str, Any]]:
        with self.db.reading("read the history") as conn:
            return [] if conn is None else _history(conn)

    # -- writing ---------------------------------------------------------------------------

    def apply(self, change_set: ChangeSet) -> StoreMeta:
        """One fenced transaction writing the changed rows; the caller holds `lock`."""
        with self.db.writing("apply", self._held_session()) as conn:
            meta, edits = _meta(_row(conn, _META + " FOR UPDATE"))
            check_fence(
                meta, change_set.expected_lineage, change_set.expected_serial, self.location
            )
            new_meta, after = self._write(conn, meta, change_set)
            cached = self._advanced(meta, edits, change_set, new_meta, after)
        self._cached = cached
        return new_meta

    def set_status(self, change: StatusChange) -> StoreMeta:
        """The objects' new status, reading only those objects; the caller holds `lock`."""
        with self.db.writing("set a status", self._held_session()) as conn:
            meta, _ = _meta(_row(conn, _META + " FOR UPDATE"))
            keys = list(change.statuses)
            named = objects_of(
                conn.execute(f"{SELECT_OBJECTS} WHERE key = ANY(%s)", (keys,)).fetchall()
            )
            change_set = status_change_set(StoreSnapshot(meta, named), change, self.location)
            new_meta, _ = self._write(conn, meta, change_set)
        return new_meta

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """The advisory lock, on a session of its own that this thread's writes use (on
        the leadership session while this process leads the daemon replicas)."""
        if self.leadership.leading:
            with self._lock_leading(timeout):
                yield
            return
        conn = self.db.sessions.connect()
        try:
            with self.db.writing("lock the store", conn):
                pass  # creates or migrates the schema: a lock makes the store
            deadline = time.monotonic() + max(timeout, 0.0)
            while not self._try_lock(conn):
                if time.monotonic() >= deadline:
                    raise self._busy(conn, timeout)
                time.sleep(_POLL_SECONDS)
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = None
        finally:
            conn.close()  # ending the session releases the lock

    @contextmanager
    def _lock_leading(self, timeout: float) -> Iterator[None]:
        """The writer lock taken on the leadership session: a lost lead loses it too."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            with self.leadership.fenced("lock the store") as conn:
                if self._try_lock(conn):
                    break
                if time.monotonic() >= deadline:
                    raise self._busy(conn, timeout)
            time.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            try:
                with self.leadership.fenced("unlock the store") as conn:
                    conn.execute(
                        "SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, WRITER_LOCK)
                    )
            except (StoreError, psycopg.Error):
                pass  # the session is gone, and the lock with it

    def dump(self) -> StoreDump:
        with self.db.reading("read the store") as conn:
            if conn is None:
                return StoreDump(_EMPTY, [], [], [], {}, [])
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                meta, _ = _meta(_row(conn, _META))
                objects = objects_of(conn.execute(f"{SELECT_OBJECTS} ORDER BY seq").fetchall())
                return StoreDump(
                    meta,
                    list(objects.values()),
                    _history(conn),
                    operations_in(conn),
                    rejections_in(conn),
                    outbox_in(conn),
                )

    def restore(self, dump: StoreDump) -> None:
        """Everything replaced in one transaction: the target is the old store or the copy."""
        self._cached = None
        with self.db.writing("restore the store", self._held_session()) as conn:
            _row(conn, _META + " FOR UPDATE")
            conn.execute(
                f"TRUNCATE {SCHEMA}.objects, {SCHEMA}.history, {SCHEMA}.operations, "
                f"{SCHEMA}.rejections, {SCHEMA}.outbox RESTART IDENTITY"
            )
            copy_objects(conn, f"{SCHEMA}.objects", dump.objects)
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {SCHEMA}.history VALUES (%s, %s)",
                    [
                        (int(e["serial"]), Json(dict(e), dumps))
                        for e in dump.history[-HISTORY_LIMIT:]
                    ],
                )
            write_operations(conn, dump.operations, self.operations.limit)
            write_rejections(conn, dump.rejections)
            write_outbox(conn, dump.outbox, self.outbox_limit)
            _set_meta(conn, dump.meta)

    # -- the rollback pin (its own row, apart from the objects) --------------------------

    def pin(self) -> Pin | None:
        with self.db.reading("read the rollback pin") as conn:
            return pin_in(conn, self.location) if conn is not None else None

    def set_pin(self, pin: Pin | None) -> None:
        with self.db.writing("set the rollback pin", self._held_session()) as conn:
            write_pin(conn, pin)

    # -- the suspension (its own row; written without the writer lock) -------------------

    def suspension(self) -> Suspension | None:
        with self.db.reading("read the suspension") as conn:
            return suspension_in(conn, self.location) if conn is not None else None

    def set_suspension(self, suspension: Suspension | None) -> None:
        doing = "suspend applies" if suspension is not None else "resume applies"
        with self.db.writing(doing) as conn:
            write_suspension(conn, suspension)

    # -- the notification outbox (its own table, written without the writer lock) ---------

    def outbox_add(self, entries: Sequence[OutboxEntry]) -> dict[str, int]:
        return self._outbox.add(entries)

    def outbox_pending(
        self, target: str | None = None, limit: int | None = None
    ) -> list[OutboxEntry]:
        return self._outbox.pending(target, limit)

    def outbox_remove(self, entry_ids: Collection[str]) -> None:
        self._outbox.remove(entry_ids)

    def notify_state(self) -> dict[str, Any] | None:
        return self._outbox.notify_state()

    def set_notify_state(self, doc: Mapping[str, Any]) -> None:
        self._outbox.set_notify_state(doc)

    # -- in the write's transaction -------------------------------------------------------

    def _write(
        self, conn: Connection, meta: StoreMeta, change_set: ChangeSet
    ) -> tuple[StoreMeta, int]:
        """Delete, upsert, move the meta, keep the history entry; the new meta and edits."""
        deletes = list(dict.fromkeys(change_set.deletes))
        if deletes:
            conn.execute(f"DELETE FROM {SCHEMA}.objects WHERE key = ANY(%s)", (deletes,))
        # One row per key: the first upsert's place, the last one's value (as TinyDB).
        upserts = list({obj.key: obj for obj in change_set.upserts}.values())
        if len(upserts) >= BULK:
            bulk_upsert(conn, upserts)
        elif upserts:
            with conn.cursor() as cur:
                cur.executemany(UPSERT, [row_values(obj) for obj in upserts])

        def owners() -> Iterator[tuple[str | None, str]]:
            # Only when an owner left Git: which owners still own an active object.
            rows = conn.execute(f"SELECT DISTINCT owner, state FROM {SCHEMA}.objects").fetchall()
            yield from ((str(owner), str(state)) for owner, state in rows)

        new_meta = applied_meta(meta, change_set, owners())
        edits = _set_meta(conn, new_meta)
        entry = {**change_set.history_entry, "serial": new_meta.serial}
        conn.execute(
            f"INSERT INTO {SCHEMA}.history VALUES (%s, %s)", (new_meta.serial, Json(entry, dumps))
        )
        conn.execute(
            f"""DELETE FROM {SCHEMA}.history WHERE serial NOT IN
                (SELECT serial FROM {SCHEMA}.history ORDER BY serial DESC LIMIT %s)""",
            (HISTORY_LIMIT,),
        )
        return new_meta, edits

    def _advanced(
        self,
        meta: StoreMeta,
        edits: int,
        change_set: ChangeSet,
        new_meta: StoreMeta,
        edits_after: int,
    ) -> _Cached | None:
        """The cache after this write, if it held the objects the write started from."""
        cached = self._cached
        if cached is None or cached.key != (meta.lineage, meta.serial, edits):
            return None
        objects = dict(cached.objects)
        for key in change_set.deletes:
            objects.pop(key, None)
        for obj in change_set.upserts:
            objects[obj.key] = obj
        return _Cached((new_meta.lineage, new_meta.serial, edits_after), objects)

    # -- the writer lock -------------------------------------------------------------------

    def _held_session(self) -> Connection | None:
        return getattr(self._held, "conn", None)

    def _try_lock(self, conn: Connection) -> bool:
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, WRITER_LOCK)
            ).fetchone()
        except psycopg.Error as exc:
            raise store_error(exc, self.location, "lock the store") from None
        return bool(row and row[0])

    def _busy(self, conn: Connection, timeout: float) -> LockTimeout:
        try:
            row = conn.execute(_HOLDER, (LOCK_CLASS, WRITER_LOCK)).fetchone()
        except psycopg.Error as exc:
            raise store_error(exc, self.location, "lock the store") from None
        holder = "unknown"
        if row is not None:
            pid, name, addr = row
            holder = f"{name or 'a session'} (server pid {pid}{f', from {addr}' if addr else ''})"
        return LockTimeout.one(
            f"The store {self.location} is locked by another writer: {holder}",
            f"Its writer lock has been held for longer than --lock-timeout ({timeout:g}s); "
            "only one process may write the store at a time.",
            f"Wait for {holder} to finish (a daemon holds the lock while it applies), or raise "
            "--lock-timeout.",
            location=self.location,
            holder=holder,
        )


# -- rows ------------------------------------------------------------------------------------


def _row(conn: Connection, query: str) -> Row:
    row = conn.execute(query).fetchone()
    if row is None:
        raise StoreError.one(
            "The PostgreSQL store has no meta row",
            "fleetward.meta must hold exactly one row; someone deleted it.",
            "Restore the database from a backup, or copy the store anew (fleetward store copy).",
        )
    return row


def _meta(row: Row) -> tuple[StoreMeta, int]:
    lineage, serial, revision, labels, edits = row
    return StoreMeta(lineage, int(serial), revision, dict(labels or {})), int(edits)


def _set_meta(conn: Connection, meta: StoreMeta) -> int:
    """Write the meta row; the edits count after this transaction's statements."""
    row = conn.execute(
        f"""UPDATE {SCHEMA}.meta SET lineage = %s, serial = %s, last_applied_revision = %s,
            owner_labels = %s RETURNING edits""",
        (
            meta.lineage,
            meta.serial,
            meta.last_applied_revision,
            Json(dict(meta.owner_labels), dumps),
        ),
    ).fetchone()
    return int(row[0]) if row is not None else 0


def _history(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT entry FROM {SCHEMA}.history ORDER BY serial").fetchall()
    return [dict(row[0]) for row in rows]


__all__ = ["BULK", "PostgresStore"]
