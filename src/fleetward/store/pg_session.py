"""Sessions with the PostgreSQL store's server: URLs shown without passwords, sane
timeouts, a few pooled connections, and every driver error turned into a StoreError
that says what went wrong in the user's terms.

A URL is shown everywhere (errors, logs, lock holders) without its password:
`postgresql://fleet@db.example:5432/fleet`. Unless the URL sets them itself,
sessions connect within `CONNECT_TIMEOUT`, cancel any statement running past
`STATEMENT_TIMEOUT` (a lock held by a forgotten session then fails an apply
instead of hanging it) and send TCP keepalives, so a server host that vanished
is noticed in seconds rather than at the kernel's two-hour default.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from fleetward.errors import Problem, StoreConflict, StoreError, StoreUnreachable

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10  # seconds
STATEMENT_TIMEOUT = "120s"  # a cold apply of 100,000 objects takes a few seconds
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
CHECK_AFTER = 5.0  # seconds idle after which a pooled session is checked before use
_IDLE_KEPT = 4  # idle connections kept for reuse (the daemon's worker and HTTP threads)

Connection = psycopg.Connection[tuple[Any, ...]]


def redacted(url: str) -> str:
    """`url` without its password (in the user part or a `password=` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Sessions:
    """Connections to one database: made with the defaults above, a few kept for reuse.

    `session()` lends a connection (autocommit; callers open `transaction()`s on
    it); `connect()` makes one the caller owns (the writer lock's session).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = redacted(url)
        self._options = _defaults(url)
        self._idle: list[tuple[Connection, float]] = []  # with when it was given back
        self._mutex = threading.Lock()
        self.check_after = CHECK_AFTER

    def connect(self, **overrides: Any) -> Connection:
        """A new session (`overrides` over the defaults: the leader's tighter keepalives);
        StoreUnreachable (clear, password-free) if it cannot be had."""
        try:
            return psycopg.connect(self.url, autocommit=True, **{**self._options, **overrides})
        except psycopg.Error as exc:
            raise connect_error(exc, self.shown) from None

    def option(self, key: str) -> Any:
        """A connection parameter as sessions get it (the URL's, else the default)."""
        return self._options.get(key, conninfo_to_dict(self.url).get(key))

    @contextmanager
    def session(self) -> Iterator[Connection]:
        """A pooled session; given back when the block ends, unless it broke.

        A session idle for longer than `check_after` seconds is asked `SELECT 1`
        first: the server may have ended it meanwhile (restart, failover,
        pg_terminate_backend), and a daemon's sessions idle between runs.
        """
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self) -> Connection:
        now = time.monotonic()
        while True:
            with self._mutex:
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if conn.closed:
                continue
            if now - since <= self.check_after:
                return conn
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()
        return self.connect()

    def _give_back(self, conn: Connection) -> None:
        idle = psycopg.pq.TransactionStatus.IDLE
        healthy = not conn.closed and conn.info.transaction_status == idle
        with self._mutex:
            if healthy and len(self._idle) < _IDLE_KEPT:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._mutex:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


def _defaults(url: str) -> dict[str, Any]:
    """Connection parameters the URL leaves unset: timeouts, keepalives, our name."""
    given = conninfo_to_dict(url)
    options: dict[str, Any] = {}
    if "connect_timeout" not in given:
        options["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in given:
        options["application_name"] = f"fleetward pid {os.getpid()} on {socket.gethostname()}"[:63]
    if "statement_timeout" not in str(given.get("options", "")):
        options["options"] = (
            f"{given.get('options', '')} -c statement_timeout={STATEMENT_TIMEOUT}".strip()
        )
    for key, value in _KEEPALIVES.items():
        if key not in given:
            options[key] = value
    return options


# -- driver errors → StoreErrors ---------------------------------------------------------------

_CONNECT_FAULTS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (
        ("password authentication failed", "no pg_hba.conf entry", 'role "', "authentication"),
        "PostgreSQL refused the credentials for {url}",
        "The server rejected the user or password: {detail}.",
        (
            "Check the user and password in --store (or FLEETWARD_STORE, or the server's "
            "pg_hba.conf for this client)."
        ),
    ),
    (
        ('database "',),
        "The database of {url} does not exist",
        "The server has no such database: {detail}.",
        (
            "Create it (createdb, or CREATE DATABASE) or correct the database name in --store; "
            "fleetward creates its own tables, not the database."
        ),
    ),
    (
        ("timeout expired", "timed out"),
        "Timed out connecting to {url}",
        "No answer from the server within the connect timeout: {detail}.",
        (
            "Check that the host is up and reachable from here (firewall, VPN), or raise "
            "connect_timeout in the URL (?connect_timeout=30)."
        ),
    ),
)


def connect_error(exc: psycopg.Error, shown: str) -> StoreUnreachable:
    """A failed connection as the user's problem: credentials, database, or reachability."""
    detail = _detail(exc)
    lowered = detail.lower()
    for needles, what, why, fix in _CONNECT_FAULTS:
        if any(n in lowered for n in needles):
            return StoreUnreachable(
                Problem(what.format(url=shown), why.format(detail=detail), fix, shown)
            )
    return StoreUnreachable.one(
        f"Cannot connect to the PostgreSQL store {shown}",
        f"The connection failed: {detail}.",
        "Check that the server is running and accepts TCP connections at that host and port, "
        "and that --store (or FLEETWARD_STORE) names it.",
        location=shown,
    )


def _detail(exc: BaseException) -> str:
    """The server's or libpq's words, without the `connection failed:` wrapper or a URL."""
    text = str(exc).strip().splitlines()
    first = " ".join(line.strip() for line in text if line.strip())
    for prefix in ("connection failed: ",):
        first = first.removeprefix(prefix)
    return first.rstrip(".") or type(exc).__name__


def store_error(exc: psycopg.Error, shown: str, doing: str) -> StoreError:
    """A driver error met while `doing` (e.g. "apply") as a StoreError; nothing was written
    (every write is one transaction, rolled back by the failure)."""
    detail = _detail(exc)
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return StoreError.one(
            f"The PostgreSQL store {shown} is read-only",
            f"The server refused to {doing}: {detail}. It is a hot standby (a read replica), "
            "or default_transaction_read_only is on for this database or role. Nothing was "
            "written.",
            "Point --store at the primary (read-write) server, or turn "
            "default_transaction_read_only off for fleetward's role.",
            location=shown,
        )
    if isinstance(exc, pg_errors.QueryCanceled):
        return StoreError.one(
            f"A statement of the PostgreSQL store {shown} timed out",
            f"The {doing} was cancelled by the server: {detail}. Another session may hold a "
            "lock on fleetward's tables. Nothing was written.",
            "Look for long-running transactions (pg_stat_activity) and end them, or raise "
            "statement_timeout in the URL (?options=-c%20statement_timeout%3D300s).",
            location=shown,
        )
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return StoreError.one(
            f"The role of {shown} may not {doing}",
            f"The server refused: {detail}. Nothing was written.",
            "Grant fleetward's role the privileges on its schema (fleetward) — it creates and "
            "owns its tables — or connect as their owner.",
            location=shown,
        )
    if isinstance(
        exc, psycopg.OperationalError | pg_errors.AdminShutdown | pg_errors.CannotConnectNow
    ):
        return StoreUnreachable.one(
            f"Lost the connection to the PostgreSQL store {shown}",
            f"The session ended during the {doing}: {detail}. A transaction the server did "
            "not commit is rolled back: the store holds the state from before it.",
            "Check the server (restarted? failed over? session terminated?), then run again.",
            location=shown,
        )
    if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return StoreConflict.one(
            "The store changed under the apply",
            f"The server aborted the {doing}: {detail}. Nothing was written.",
            "Plan again.",
            location=shown,
        )
    return StoreError.one(
        f"The PostgreSQL store {shown} failed to {doing}",
        f"{detail} (SQLSTATE {exc.sqlstate or 'unknown'}). Nothing was written.",
        "Check the server's log for this error; run again once it is resolved.",
        location=shown,
    )


__all__ = [
    "CONNECT_TIMEOUT",
    "STATEMENT_TIMEOUT",
    "Connection",
    "Sessions",
    "connect_error",
    "redacted",
    "store_error",
]
