"""Leadership among daemon replicas on one PostgreSQL store, and the fence it gives.

Any number of daemons may run on one database; the one whose dedicated session
holds the session-level advisory lock (LOCK_CLASS, LEADER_LOCK) is the leader:
it alone fetches, plans and applies. The lock is distinct from the writer lock
(`PostgresStore.lock`) so that a hand-run `fleetward apply` still waits only for
the apply in progress, not for the whole life of a daemon; while a replica
leads, its writer lock is taken on the leadership session too.

Fencing: while a replica leads, every write it makes — applies, statuses, the
operation log, rejections, the outbox — goes through the leadership session
(`Database.writing` asks the fence). A session the server ended (the process was
killed, `pg_terminate_backend`, the host vanished and keepalives gave up) holds
no lock any more, and no write can go through it: a deposed leader cannot commit
anything, even before it noticed. A standby writes operator requests through its
pooled sessions as any client does.

How fast a dead leader is noticed: a killed process closes its socket and the
server ends the session at once; a vanished host is noticed by the server's TCP
keepalives, which the leadership session sets to `KEEPALIVE_IDLE` +
`KEEPALIVE_INTERVAL` × `KEEPALIVE_COUNT` seconds. Standbys try to take the lock
every `RETRY_SECONDS`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from fleetward.errors import StoreUnreachable
from fleetward.store.pg_schema import LOCK_CLASS, Database
from fleetward.store.pg_session import Connection

LEADER_LOCK = 5
RETRY_SECONDS = 1.0  # a standby's attempts to take the lead
KEEPALIVE_IDLE = 2  # seconds: the server probes a silent leader's connection…
KEEPALIVE_INTERVAL = 1  # …every second…
KEEPALIVE_COUNT = 3  # …and ends its session after this many unanswered probes
# The bound documented in the README: a vanished host is seen after the keepalives,
# then a standby takes the lock at its next attempt.
FAILOVER_BOUND = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT + 2 * RETRY_SECONDS
_SERVER_KEEPALIVES = (
    f"-c tcp_keepalives_idle={KEEPALIVE_IDLE} -c tcp_keepalives_interval={KEEPALIVE_INTERVAL} "
    f"-c tcp_keepalives_count={KEEPALIVE_COUNT}"
)
_CLIENT_KEEPALIVES = {
    "keepalives_idle": str(KEEPALIVE_IDLE),
    "keepalives_interval": str(KEEPALIVE_INTERVAL),
    "keepalives_count": str(KEEPALIVE_COUNT),
}


class Leadership:
    """This process's claim to lead the replicas of one database.

    `try_lead` takes the lock if it is free; `still_leading` checks the session is
    alive (and so still holds it); `fenced` lends the session to one write at a
    time, refusing once leadership is lost. Thread-safe.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None
        self._mutex = threading.RLock()  # one transaction at a time on the session
        self.lost = False  # led, and the session is gone: writes refused until stepped down

    @property
    def leading(self) -> bool:
        return self._conn is not None and not self.lost

    @property
    def pid(self) -> int | None:
        """The server pid of the leadership session (for logs and `pg_terminate_backend`)."""
        conn = self._conn
        return None if conn is None else conn.info.backend_pid

    def try_lead(self) -> bool:
        """Take the lead if no other session holds it; True when this process leads.

        StoreError (clear, password-free) when the database cannot be reached."""
        with self._mutex:
            if self._conn is not None:
                return not self.lost
            conn = self.db.sessions.connect(options=self._options(), **_CLIENT_KEEPALIVES)
            try:
                with self.db.translated("take the lead"):
                    self.db.ensure(conn)
                    row = conn.execute(
                        "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LEADER_LOCK)
                    ).fetchone()
            except BaseException:
                conn.close()
                raise
            if not (row and row[0]):
                conn.close()
                return False
            self._conn, self.lost = conn, False
            self.db.fence = self
            return True

    def still_leading(self) -> bool:
        """Ask the session whether it is alive; a dead one marks leadership lost."""
        with self._mutex:
            conn = self._conn
            if conn is None or self.lost:
                return False
            try:
                conn.execute("SELECT 1")
            except psycopg.Error:
                self.lost = True
                return False
            return True

    def step_down(self) -> None:
        """Give up the lead (or what is left of it): the session is closed, its locks go."""
        with self._mutex:
            conn, self._conn = self._conn, None
            self.lost = False
            if self.db.fence is self:
                self.db.fence = None
        if conn is not None:
            conn.close()

    @contextmanager
    def fenced(self, doing: str) -> Iterator[Connection]:
        """The leadership session for one write; StoreUnreachable once the lead is lost."""
        with self._mutex:
            conn = self._conn
            if conn is None or self.lost or conn.closed:
                self.lost = self._conn is not None
                raise self.lost_error(doing)
            try:
                yield conn
            except psycopg.OperationalError:
                self.lost = True
                raise

    def lost_error(self, doing: str) -> StoreUnreachable:
        return StoreUnreachable.one(
            f"This replica lost the lead of {self.db.shown}",
            f"Its leadership session ended, so it may not {doing}: another replica may lead "
            "now. Nothing was written.",
            "Nothing to do: the replica steps down and stands by; the leader carries on.",
            location=self.db.shown,
        )

    def _options(self) -> str:
        base = str(self.db.sessions.option("options") or "")
        return f"{base} {_SERVER_KEEPALIVES}".strip()


__all__ = ["FAILOVER_BOUND", "LEADER_LOCK", "RETRY_SECONDS", "Leadership"]
