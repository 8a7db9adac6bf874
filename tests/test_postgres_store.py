"""What only the PostgreSQL store does, against a real server (tests/postgres_support.py):
fencing between writers, crash atomicity, row-level writes, its schema and migrations,
and every fault turned into a clear error that names the URL without its password.
The contract it shares with the other stores is tests/test_store_contract.py.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from postgres_support import Server
from test_store_contract import _apply, _asset

from fleetward.cli import cli
from fleetward.errors import LockTimeout, StoreConflict, StoreError, StoreUnreachable
from fleetward.model import ObjectKey
from fleetward.store import ChangeSet
from fleetward.store.pg_schema import LATEST, SCHEMA
from fleetward.store.pg_session import redacted
from fleetward.store.postgres import BULK, PostgresStore

WAIT = 60.0  # seconds: generous, for a loaded machine


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    event = threading.Event()
    for _ in range(int(WAIT / 0.05)):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _waiting_backends(postgres: Server, database: str) -> list[int]:
    """Server pids of the sessions of `database` waiting for a lock."""
    with postgres.admin() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (database,),
        ).fetchall()
    return [int(r[0]) for r in rows]


def _block_row(postgres: Server, database: str, key: str) -> psycopg.Connection[Any]:
    """A session holding a row lock on object `key` in an open transaction."""
    blocker = psycopg.connect(postgres.url(database))
    blocker.execute(f"SELECT 1 FROM {SCHEMA}.objects WHERE key = %s FOR UPDATE", (key,))
    return blocker


# -- fencing ---------------------------------------------------------------------------------


def test_two_writers_planning_on_the_same_serial_exactly_one_commits(pg_url: str) -> None:
    """Without the writer lock, the serial alone fences: one lands, the other is refused."""
    _apply(PostgresStore(pg_url), [_asset("A")])
    writers = [PostgresStore(pg_url) for _ in range(2)]
    metas = [w.meta() for w in writers]
    assert metas[0] == metas[1]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def write(n: int) -> None:
        store = writers[n]
        change = ChangeSet(
            metas[n].lineage, metas[n].serial, f"r{n}", [_asset(f"W{n}")], [], {"revision": n}
        )
        barrier.wait(WAIT)
        try:
            store.apply(change)
            outcomes.append("committed")
        except StoreConflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(outcomes) == ["committed", "refused"]
    after = PostgresStore(pg_url)
    assert after.meta().serial == metas[0].serial + 1
    assert len(after.read().objects) == 2
    assert [h["serial"] for h in after.history()] == [1, 2]


def test_a_write_under_a_lock_whose_session_died_is_refused(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    """The lock's session carries the write: once it is terminated, nothing lands."""
    store = PostgresStore(pg_url)
    _apply(store, [_asset("A")])
    before = store.dump()
    with store.lock(5):
        with postgres.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = %s)",
                (pg_database,),
            )
        with pytest.raises(StoreUnreachable, match="Lost the connection"):
            _apply(store, [_asset("B")])
    assert store.dump() == before
    with store.lock(5):  # a new session takes the lock again
        _apply(store, [_asset("B")])
    assert store.meta().serial == 2


def test_the_lock_timeout_names_the_holder(pg_url: str) -> None:
    holder, waiter = PostgresStore(pg_url), PostgresStore(pg_url)
    with holder.lock(5), pytest.raises(LockTimeout) as caught, waiter.lock(0.3):
        pass
    problem = caught.value.problems[0]
    assert "locked by another writer: fleetward pid" in problem.error
    assert "server pid" in problem.error


# -- crash atomicity -------------------------------------------------------------------------


def _stalled_change(store: PostgresStore) -> ChangeSet:
    """A change set of many rows whose last upsert is of Asset/Z (blocked by a test)."""
    meta = store.meta()
    upserts = [_asset(f"N{i}") for i in range(50)] + [_asset("Z", "FH12")]
    return ChangeSet(meta.lineage, meta.serial, "r2", upserts, ["Asset/A"], {"revision": "r2"})


def test_a_session_killed_mid_transaction_leaves_the_state_before(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    store = PostgresStore(pg_url)
    _apply(store, [_asset("A"), _asset("Z")], revision="r1")
    before = store.dump()
    blocker = _block_row(postgres, pg_database, "Asset/Z")
    failure: list[BaseException] = []

    def write() -> None:
        try:
            store.apply(_stalled_change(store))
        except BaseException as exc:  # noqa: BLE001 — handed to the test thread
            failure.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    # The apply has deleted A and written 50 rows, and waits for Z's row lock.
    _wait_for(lambda: bool(_waiting_backends(postgres, pg_database)), "the apply to block")
    with postgres.admin() as admin:
        for pid in _waiting_backends(postgres, pg_database):
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    writer.join(WAIT)
    blocker.rollback()
    blocker.close()
    assert len(failure) == 1 and isinstance(failure[0], StoreUnreachable)
    assert "state from before it" in failure[0].problems[0].reason
    assert PostgresStore(pg_url).dump() == before


def test_a_client_killed_mid_transaction_leaves_the_state_before(
    postgres: Server, pg_url: str, pg_database: str, tmp_path: Path
) -> None:
    store = PostgresStore(pg_url)
    _apply(store, [_asset("A"), _asset("Z")], revision="r1")
    before = store.dump()
    blocker = _block_row(postgres, pg_database, "Asset/Z")
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_postgres_store import _stalled_change
            from fleetward.store.postgres import PostgresStore
            store = PostgresStore({pg_url!r})
            store.apply(_stalled_change(store))
            """
        )
    )
    client = subprocess.Popen([sys.executable, str(script)])
    try:
        _wait_for(lambda: bool(_waiting_backends(postgres, pg_database)), "the apply to block")
        client.send_signal(signal.SIGKILL)
        client.wait(WAIT)
    finally:
        blocker.rollback()
        blocker.close()
    _wait_for(lambda: not _waiting_backends(postgres, pg_database), "the server to notice")
    assert PostgresStore(pg_url).dump() == before


# -- what an apply writes --------------------------------------------------------------------


def _row_versions(postgres: Server, database: str) -> dict[str, str]:
    with postgres.admin(database) as conn:
        rows = conn.execute(f"SELECT key, xmin::text FROM {SCHEMA}.objects").fetchall()
    return {str(key): str(xmin) for key, xmin in rows}


def test_an_apply_writes_only_the_rows_that_changed(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    store = PostgresStore(pg_url)
    _apply(store, [_asset(f"A{i}") for i in range(200)])
    before = _row_versions(postgres, pg_database)
    _apply(store, [_asset("A5", "FH12"), _asset("NEW")], ["Asset/A7"])
    after = _row_versions(postgres, pg_database)
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {"Asset/A5", "Asset/NEW"}
    assert set(before) - set(after) == {"Asset/A7"}


def test_a_large_change_goes_through_copy_and_keeps_the_order(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    creates = [_asset(f"C{i:05d}") for i in range(BULK + 10)]
    _apply(store, creates)  # into an empty table
    updates = [_asset(f"C{i:05d}", "FH12") for i in range(0, BULK + 10, 2)]
    fresh = [_asset(f"D{i:05d}") for i in range(BULK)]
    _apply(store, [*updates, *fresh], ["Asset/C00001"])  # through the temp table
    objects = PostgresStore(pg_url).read().objects
    expected_keys = [o.key for o in creates if o.key != "Asset/C00001"] + [o.key for o in fresh]
    assert list(objects) == expected_keys
    assert objects[ObjectKey("Asset/C00002")].spec["attributes"] == {"model": "FH12"}
    assert objects[ObjectKey("Asset/C00003")].spec["attributes"] == {"model": "FH16"}


def test_drift_edited_into_the_database_is_seen_by_a_warm_store(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    store = PostgresStore(pg_url)
    _apply(store, [_asset("A"), _asset("B")])
    assert not store.read().objects[ObjectKey("Asset/A")].drifted  # now cached
    with postgres.admin(pg_database) as conn:
        conn.execute(
            f"""UPDATE {SCHEMA}.objects SET spec = '{{"externalAssetId": "A",
                "attributes": {{"model": "hand-edited"}}, "labels": {{}}}}' WHERE key = 'Asset/A'"""
        )
    objects = store.read().objects
    assert objects[ObjectKey("Asset/A")].drifted
    assert not objects[ObjectKey("Asset/B")].drifted


# -- schema and migrations -------------------------------------------------------------------


def _schema_exists(postgres: Server, database: str) -> bool:
    with postgres.admin(database) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_version",)).fetchone()
    return row is not None and row[0] is not None


def test_reads_create_nothing_and_the_first_write_creates_the_versioned_schema(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    store = PostgresStore(pg_url)
    assert store.read().meta.serial == 0 and not store.exists()
    assert not _schema_exists(postgres, pg_database)
    _apply(store, [_asset("A")])
    assert store.exists()
    with postgres.admin(pg_database) as conn:
        rows = conn.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchall()
    assert [r[0] for r in rows] == list(range(1, LATEST + 1))


def test_writers_starting_at_once_on_a_new_database_migrate_it_once(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def start() -> None:
        barrier.wait(WAIT)
        try:
            with PostgresStore(pg_url).lock(WAIT):
                pass
        except BaseException as exc:  # noqa: BLE001 — handed to the test thread
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert failures == []
    with postgres.admin(pg_database) as conn:
        rows = conn.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchall()
    assert sorted(r[0] for r in rows) == list(range(1, LATEST + 1))


def test_a_newer_schema_is_refused_with_a_clear_error(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    _apply(PostgresStore(pg_url), [_asset("A")])
    with postgres.admin(pg_database) as conn:
        conn.execute(f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)", (LATEST + 7,))
    for attempt in (
        lambda s: s.read(),
        lambda s: s.meta(),
        lambda s: _apply(s, [_asset("B")]),
        lambda s: s.lock(5).__enter__(),
    ):
        with pytest.raises(StoreError) as caught:
            attempt(PostgresStore(pg_url))
        problem = caught.value.problems[0]
        assert "newer schema than this fleetward understands" in problem.error
        assert f"version {LATEST + 7}" in problem.reason and f"up to {LATEST}" in problem.reason
        assert "Upgrade fleetward" in problem.resolution
        assert postgres.password not in str(caught.value)


# -- faults ----------------------------------------------------------------------------------


def _fault_urls(postgres: Server, database: str) -> dict[str, tuple[str, type[StoreError], str]]:
    """Fault → (URL, error class, words the error must carry)."""
    closed_port = postgres.url(database).replace(f":{postgres.port}/", ":1/")
    return {
        "unreachable": (closed_port, StoreUnreachable, "Cannot connect to the PostgreSQL store"),
        "credentials": (
            postgres.url(database, password="wrong-pw"),
            StoreUnreachable,
            "refused the credentials",
        ),
        "database": (postgres.url("no_such_db"), StoreUnreachable, "does not exist"),
        "read-only": (
            postgres.url(database, options="-c%20default_transaction_read_only%3Don"),
            StoreError,
            "is read-only",
        ),
    }


@pytest.mark.parametrize("fault", ["unreachable", "credentials", "database", "read-only"])
def test_each_fault_is_a_clear_error_naming_the_url_without_its_password(
    postgres: Server, pg_database: str, fault: str
) -> None:
    url, error, words = _fault_urls(postgres, pg_database)[fault]
    store = PostgresStore(url)
    with pytest.raises(error) as caught:
        _apply(store, [_asset("A")])
    problem = caught.value.problems[0]
    assert words in problem.error
    assert problem.location == store.location and problem.location in problem.error
    assert "postgres@127.0.0.1" in problem.location
    for text in (str(caught.value), problem.reason, problem.resolution):
        assert postgres.password not in text and "wrong-pw" not in text
    assert problem.resolution
    # The CLI: Error / Reason / Resolution, exit 1, no traceback, the password nowhere.
    result = CliRunner(env={"NO_COLOR": "1"}).invoke(cli, ["state", "show", "--store", url])
    if fault == "read-only":  # reading works on a read-only server: writing does not
        result = CliRunner(env={"NO_COLOR": "1"}).invoke(
            cli, ["store", "copy", "--from", "memory:", "--to", url]
        )
        assert result.exit_code == 1, result.output
        assert "is read-only" in result.output and "primary" in result.output
        return
    assert result.exit_code == 1, result.output
    for part in ("Error", "Reason", "Resolution", words):
        assert part in result.output
    assert "Traceback" not in result.output and postgres.password not in result.output


def test_a_statement_timeout_is_a_clear_error_and_writes_nothing(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    _apply(PostgresStore(pg_url), [_asset("A")])
    before = PostgresStore(pg_url).dump()
    blocker = psycopg.connect(postgres.url(pg_database))
    blocker.execute(f"SELECT 1 FROM {SCHEMA}.meta FOR UPDATE")  # a forgotten transaction
    try:
        impatient = PostgresStore(postgres.url(pg_database, options="-c%20statement_timeout%3D300"))
        with pytest.raises(StoreError) as caught:
            _apply(impatient, [_asset("B")])
    finally:
        blocker.rollback()
        blocker.close()
    problem = caught.value.problems[0]
    assert "timed out" in problem.error and "statement_timeout" in problem.resolution
    assert postgres.password not in str(caught.value)
    assert PostgresStore(pg_url).dump() == before


def test_a_store_keeps_working_after_the_server_ended_its_sessions(
    postgres: Server, pg_url: str, pg_database: str
) -> None:
    """A pooled session the server ended while it was idle is replaced, not lent out."""
    store = PostgresStore(pg_url)
    store.db.sessions.check_after = 0.0  # every idle session counts as idle for long
    _apply(store, [_asset("A")])
    with postgres.admin() as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (pg_database,),
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    assert store.meta().serial == 1
    _apply(store, [_asset("B")])
    assert store.meta().serial == 2


def test_objects_read_back_equal_what_was_written(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    unusual = dataclasses.replace(
        _asset("Ü-1"),
        spec={"externalAssetId": "Ü-1", "attributes": {"note": "tab\there\nnewline \\ ✓"}},
        status={},
    )
    _apply(store, [unusual, *(_asset(f"B{i}") for i in range(BULK))])
    assert PostgresStore(pg_url).read().objects[ObjectKey("Asset/Ü-1")] == unusual


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://fleet:s3cret@db.example:5432/fleet",
            "postgresql://fleet@db.example:5432/fleet",
        ),
        (
            "postgres://fleet@db.example/fleet?password=s3cret&sslmode=require",
            "postgres://fleet@db.example/fleet?sslmode=require",
        ),
        ("postgresql://db.example/fleet", "postgresql://db.example/fleet"),
        ("postgresql://fleet:s3cret@[::1]:5433/fleet", "postgresql://fleet@[::1]:5433/fleet"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert PostgresStore(url).location == shown
