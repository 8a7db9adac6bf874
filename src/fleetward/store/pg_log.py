"""The operation log and the rejections of the PostgreSQL store: rows, not files.

The same rules as the state directory's files (`store.operations`,
`store.rejections`): operations oldest first, replaced in place, the oldest
finished ones evicted past the limit, never one still waiting or running.
Writers of the log take a transaction-level advisory lock, as the file log
takes its lock file, so the eviction of two recorders never overlaps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg.types.json import Json

from fleetward.errors import StoreError
from fleetward.operations import Operation, OperationState
from fleetward.store.operations import OPERATIONS_LIMIT, PagedLog
from fleetward.store.pg_schema import LOCK_CLASS, OPERATIONS_LOCK, SCHEMA, Database
from fleetward.store.pg_session import Connection

logger = logging.getLogger(__name__)

_UPSERT_OPERATION = f"""
    INSERT INTO {SCHEMA}.operations (id, final, state, doc) VALUES (%s, %s, %s, %s)
    ON CONFLICT (id) DO UPDATE
    SET final = EXCLUDED.final, state = EXCLUDED.state, doc = EXCLUDED.doc"""
# The `excess` oldest finished operations: `store.operations.bounded`, in SQL.
_EVICT = f"""
    DELETE FROM {SCHEMA}.operations WHERE id IN (
        SELECT id FROM {SCHEMA}.operations WHERE final ORDER BY seq
        LIMIT greatest((SELECT count(*) FROM {SCHEMA}.operations) - %s, 0))"""


def operations_in(conn: Connection) -> list[Operation]:
    """Every kept operation, oldest first."""
    rows = conn.execute(f"SELECT doc FROM {SCHEMA}.operations ORDER BY seq").fetchall()
    return [Operation.from_dict(row[0]) for row in rows]


def write_operations(conn: Connection, operations: Sequence[Operation], limit: int) -> None:
    """Insert or replace `operations` in order, then evict past `limit` (in the caller's
    transaction)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, OPERATIONS_LOCK))
    with conn.cursor() as cur:
        cur.executemany(
            _UPSERT_OPERATION,
            [
                (op.operation_id, op.state.final, int(op.state), Json(op.to_dict(), dumps))
                for op in operations
            ],
        )
    conn.execute(_EVICT, (limit,))


def rejections_in(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        f"SELECT policy, digest, operation_id, state, at FROM {SCHEMA}.rejections ORDER BY policy"
    ).fetchall()
    return {
        policy: {"digest": digest, "operationId": op_id, "state": state, "at": at}
        for policy, digest, op_id, state, at in rows
    }


def write_rejections(conn: Connection, rejections: Mapping[str, Mapping[str, Any]]) -> None:
    """Insert or replace rejections (policy → {digest, operationId, state, at})."""
    with conn.cursor() as cur:
        cur.executemany(
            f"""INSERT INTO {SCHEMA}.rejections VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (policy) DO UPDATE SET digest = EXCLUDED.digest,
                operation_id = EXCLUDED.operation_id, state = EXCLUDED.state, at = EXCLUDED.at""",
            [
                (policy, e["digest"], e["operationId"], e["state"], e["at"])
                for policy, e in rejections.items()
            ],
        )


class PostgresOperationLog(PagedLog):
    """The operation log in `fleetward.operations` (an `OperationStore`)."""

    def __init__(self, db: Database, limit: int = OPERATIONS_LIMIT) -> None:
        self.db = db
        self.limit = limit

    def all(self) -> list[Operation]:
        with self.db.reading("read the operation log") as conn:
            return [] if conn is None else operations_in(conn)

    def get(self, operation_id: str) -> Operation | None:
        with self.db.reading("read the operation log") as conn:
            if conn is None:
                return None
            row = conn.execute(
                f"SELECT doc FROM {SCHEMA}.operations WHERE id = %s", (operation_id,)
            ).fetchone()
        return None if row is None else Operation.from_dict(row[0])

    def record(self, *operations: Operation) -> None:
        if not operations:
            return
        with self.db.writing("record an operation") as conn:
            write_operations(conn, operations, self.limit)

    def fail_unfinished(self, now: str, message: str) -> list[Operation]:
        with self.db.writing("end the operations a stopped process left") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, OPERATIONS_LOCK))
            rows = conn.execute(
                f"SELECT doc FROM {SCHEMA}.operations WHERE NOT final AND state <> %s "
                "ORDER BY seq FOR UPDATE",
                (int(OperationState.SCHEDULED),),
            ).fetchall()
            ended = [
                Operation.from_dict(row[0]).move(OperationState.FAILURE, now, message)
                for row in rows
            ]
            if ended:
                write_operations(conn, ended, self.limit)
        return ended


class PostgresRejections:
    """The rejected plans in `fleetward.rejections` (a `RejectionStore`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self) -> dict[str, dict[str, Any]] | None:
        """None (logged) when the database cannot be read: control then holds every
        policy's changes rather than release one an operator rejected."""
        try:
            with self.db.reading("read the rejections") as conn:
                return {} if conn is None else rejections_in(conn)
        except StoreError as exc:
            logger.error("cannot read the rejections: %s; every policy's changes are held", exc)
            return None

    def add(self, policy: str, digest: str, op: Operation) -> None:
        entry = {
            "digest": digest,
            "operationId": op.operation_id,
            "state": op.state.name,
            "at": op.updated_at,
        }
        with self.db.writing("record a rejection") as conn:
            write_rejections(conn, {policy: entry})

    def keep(self, policies: Iterable[str]) -> None:
        with self.db.writing("drop settled rejections") as conn:
            conn.execute(
                f"DELETE FROM {SCHEMA}.rejections WHERE NOT (policy = ANY(%s))", (list(policies),)
            )

    def lift(self, policy: str) -> None:
        with self.db.writing("lift a rejection") as conn:
            conn.execute(f"DELETE FROM {SCHEMA}.rejections WHERE policy = %s", (policy,))


def dumps(value: Any) -> str:
    """JSON text as the other stores keep it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


__all__ = [
    "PostgresOperationLog",
    "PostgresRejections",
    "dumps",
    "operations_in",
    "rejections_in",
    "write_operations",
    "write_rejections",
]
