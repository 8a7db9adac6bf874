"""The Store contract, run against every store: TinyDB in a real state directory, memory,
and PostgreSQL (a real server started by the tests; a new database per test).

Each test states one promise of `fleetward.store.Store` (its docstring is the
contract): empty reads, fenced all-or-nothing writes that move the serial,
a lineage fixed at the first write, a bounded ordered history, status writes
that leave spec alone, the operation log and the writer lock. A new store is
one more parameter of `store_kind`. What only one store does (TinyDB's file
replacement and temp-file sweep, crash safety) is tested beside it:
test_store.py, test_crash_safety.py.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fleetward.cli import cli
from fleetward.errors import LockTimeout, StoreConflict, StoreError, UsageError
from fleetward.model import ObjectKey, ObjectState, StoredObject, StoreMeta, spec_hash
from fleetward.operations import Operation, OperationState
from fleetward.store import (
    HISTORY_LIMIT,
    OUTBOX_LIMIT,
    ChangeSet,
    MemoryOperationLog,
    MemoryStore,
    OperationLog,
    OperationStore,
    OutboxEntry,
    Pin,
    StatusChange,
    Store,
    StoreDump,
    TinyDBStore,
    open_store,
)
from fleetward.store.postgres import PostgresStore
from fleetward.store.suspension import SUSPEND_FILE, Suspension

S = OperationState
STORE_KINDS = ["tinydb", "memory", "postgres"]


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def location(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a new, empty store of the kind is (a fresh database for postgres)."""
    if store_kind == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "state") if store_kind == "tinydb" else "memory:"


@pytest.fixture
def store(location: str) -> Store:
    return open_store(location)


@pytest.fixture
def open_log(store_kind: str, location: str) -> Callable[[int], OperationStore]:
    """An empty operation log of the store kind, keeping at most `limit` operations."""

    def make(limit: int) -> OperationStore:
        if store_kind == "tinydb":
            return OperationLog(location, limit=limit)
        if store_kind == "postgres":
            return PostgresStore(location, operations_limit=limit).operations
        return MemoryOperationLog(limit=limit)

    return make


def _asset(ident: str, model: str = "FH16", owner: str = "Fleet/north") -> StoredObject:
    spec = {"externalAssetId": ident, "attributes": {"model": model}, "labels": {}}
    return StoredObject(
        key=ObjectKey(f"Asset/{ident}"),
        kind="Asset",
        spec=spec,
        status={"odometerKm": 12},
        owner=owner,
        state=ObjectState.ACTIVE,
        spec_hash=spec_hash(spec),
        generation=1,
        applied_revision="rev1",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )


def _apply(
    store: Store,
    upserts: Any = (),
    deletes: Any = (),
    revision: str = "rev",
    owner_labels: Any = None,
) -> StoreMeta:
    meta = store.meta()
    return store.apply(
        ChangeSet(
            meta.lineage,
            meta.serial,
            revision,
            list(upserts),
            list(deletes),
            {"revision": revision},
            owner_labels,
        )
    )


def _keys(store: Store) -> list[str]:
    return list(store.read().objects)


# -- reading and writing objects -----------------------------------------------------------


def test_an_empty_store_reads_as_no_lineage_serial_zero(store: Store) -> None:
    snapshot = store.read()
    assert snapshot.meta == StoreMeta(lineage=None, serial=0, last_applied_revision=None)
    assert store.meta() == snapshot.meta
    assert dict(snapshot.objects) == {}
    assert store.history() == []
    assert store.operations.all() == []


def test_apply_creates_updates_and_deletes_and_bumps_the_serial(store: Store) -> None:
    first = _apply(store, [_asset("A"), _asset("B"), _asset("C")], revision="r1")
    assert first.serial == 1 and first.last_applied_revision == "r1"
    assert store.meta() == first
    assert _keys(store) == ["Asset/A", "Asset/B", "Asset/C"]

    second = _apply(store, [_asset("A", "FH12"), _asset("D")], ["Asset/B"], revision="r2")
    snapshot = store.read()
    assert second.serial == 2 and snapshot.meta == second
    # An update keeps the object's place; a create comes last.
    assert _keys(store) == ["Asset/A", "Asset/C", "Asset/D"]
    assert snapshot.objects[ObjectKey("Asset/A")] == _asset("A", "FH12")
    assert snapshot.objects[ObjectKey("Asset/C")] == _asset("C")


def test_the_lineage_is_fixed_at_the_first_apply(store: Store) -> None:
    lineage = _apply(store, [_asset("A")]).lineage
    assert lineage is not None and len(lineage) == 36  # a UUID
    for n in range(3):
        assert _apply(store, [_asset("A", str(n))]).lineage == lineage
    assert _apply(store, deletes=["Asset/A"]).lineage == lineage, "even once it is empty again"
    # A change set that names no lineage (a plan made before the store existed) is fenced
    # by the serial alone.
    meta = store.meta()
    after = store.apply(ChangeSet(None, meta.serial, "r", [_asset("B")], [], {}))
    assert after.lineage == lineage and after.serial == meta.serial + 1


@pytest.mark.parametrize("moved", ["serial", "lineage"])
def test_a_stale_change_set_is_refused_and_writes_nothing(store: Store, moved: str) -> None:
    _apply(store, [_asset("A")], revision="r1")
    _apply(store, [_asset("A", "FH12")], revision="r2")
    before, history = store.read(), store.history()
    meta = before.meta
    lineage = "00000000-0000-0000-0000-000000000000" if moved == "lineage" else meta.lineage
    serial = meta.serial - 1 if moved == "serial" else meta.serial
    stale = ChangeSet(lineage, serial, "r3", [_asset("B")], ["Asset/A"], {"revision": "r3"})
    with pytest.raises(StoreConflict, match="changed under the apply") as caught:
        store.apply(stale)
    assert isinstance(caught.value, StoreError)
    assert "Plan again" in caught.value.problems[0].resolution
    assert store.read() == before
    assert store.history() == history


def test_the_history_is_bounded_ordered_and_numbered_by_serial(store: Store) -> None:
    for i in range(HISTORY_LIMIT + 5):
        _apply(store, [_asset("A", str(i))], revision=f"r{i}")
    history = store.history()
    assert len(history) == HISTORY_LIMIT
    assert [h["revision"] for h in history] == [f"r{i}" for i in range(5, HISTORY_LIMIT + 5)]
    assert [h["serial"] for h in history] == list(range(6, HISTORY_LIMIT + 6))


def test_owner_labels_outlive_their_document_while_it_owns_an_active_object(
    store: Store,
) -> None:
    labels = {"Fleet/north": {"site": "n"}, "Fleet/south": {"site": "s"}}
    _apply(store, [_asset("N"), _asset("S", owner="Fleet/south")], owner_labels=labels)
    assert store.meta().owner_labels == labels
    # Fleet/south left Git; its object is still active, so its labels stay.
    _apply(store, owner_labels={"Fleet/north": {"site": "n2"}})
    kept = {"Fleet/north": {"site": "n2"}, "Fleet/south": labels["Fleet/south"]}
    assert store.meta().owner_labels == kept
    # A saved plan's change set names no labels: the store keeps what it has.
    _apply(store, [_asset("N", "X")])
    assert set(store.meta().owner_labels) == {"Fleet/north", "Fleet/south"}
    # Once it owns nothing active, they go.
    stopped = dataclasses.replace(_asset("S", owner="Fleet/south"), state=ObjectState.STOPPED)
    _apply(store, [stopped], owner_labels={"Fleet/north": {"site": "n2"}})
    assert store.meta().owner_labels == {"Fleet/north": {"site": "n2"}}


# -- runtime status ----------------------------------------------------------------------


def _status_change(store: Store, statuses: Any, **overrides: Any) -> StatusChange:
    meta = store.meta()
    fields: dict[str, Any] = {
        "expected_lineage": meta.lineage,
        "expected_serial": meta.serial,
        "statuses": statuses,
        "updated_at": "2026-02-02T00:00:00.000Z",
        "history_entry": {"operationId": "set-status A", "counts": {"status": 1}},
    }
    return StatusChange(**{**fields, **overrides})


def test_a_status_write_moves_the_serial_but_never_the_spec(store: Store) -> None:
    _apply(store, [_asset("A"), _asset("B")], revision="r1")
    before = store.read()
    new_status = {"odometerKm": 12, "status": "completed", "modifiedBy": "ann"}
    meta = store.set_status(_status_change(store, {ObjectKey("Asset/A"): new_status}))

    assert meta.serial == before.meta.serial + 1
    assert meta.lineage == before.meta.lineage
    assert meta.last_applied_revision == "r1", "a status write applies no revision"
    after = store.read()
    assert after.meta == meta
    old, new = before.objects[ObjectKey("Asset/A")], after.objects[ObjectKey("Asset/A")]
    assert new.status == new_status and new.updated_at == "2026-02-02T00:00:00.000Z"
    assert dataclasses.replace(new, status=old.status, updated_at=old.updated_at) == old
    assert not new.drifted
    assert after.objects[ObjectKey("Asset/B")] == before.objects[ObjectKey("Asset/B")]
    assert store.history()[-1] == {
        "operationId": "set-status A",
        "counts": {"status": 1},
        "serial": meta.serial,
    }


def test_a_stale_or_unknown_status_write_is_refused_and_writes_nothing(store: Store) -> None:
    _apply(store, [_asset("A")])
    _apply(store, [_asset("A", "FH12")])
    before, history = store.read(), store.history()
    status = {ObjectKey("Asset/A"): {"status": "done"}}
    with pytest.raises(StoreConflict):
        store.set_status(_status_change(store, status, expected_serial=before.meta.serial - 1))
    with pytest.raises(StoreError, match="not in the store"):
        store.set_status(_status_change(store, {ObjectKey("Asset/NOPE"): {"status": "done"}}))
    assert store.read() == before and store.history() == history


# -- the operation log -------------------------------------------------------------------


def op_at(created: str, state: OperationState = S.SUCCESS, trigger: str = "poll") -> Operation:
    op = Operation.new(trigger, created)
    if state is S.SUCCESS:
        return op.through([S.RESOLVING, S.RESOLVED, S.SUCCESS], created)
    if state is S.CREATED:
        return op
    if state is S.RESOLVING:
        return op.move(S.RESOLVING, created)
    return op.move(state, created)


def test_the_log_orders_and_pages_operations(open_log: Callable[[int], OperationStore]) -> None:
    log = open_log(1000)
    same_second = "2026-01-01T00:00:05Z"
    ops = [
        op_at("2026-01-01T00:00:01Z"),
        op_at("2026-01-01T00:00:02Z", S.FAILURE),
        op_at(same_second),
        op_at(same_second, S.CANCELLED),  # recorded after the one before: newer
        op_at("2026-01-01T00:00:09Z"),
    ]
    for op in ops:
        log.record(op)
    every = [op.operation_id for op in ops]
    assert [op.operation_id for op in log.all()] == every

    def query(**kw: Any) -> tuple[list[str], int]:
        found, total = log.query(**kw)
        return [op.operation_id for op in found], total

    assert query() == (every[::-1], 5)  # newest first by default
    assert query(ordering="created_at") == (every, 5)
    assert query(limit=2) == (every[::-1][:2], 5)
    assert query(limit=2, offset=2) == (every[::-1][2:4], 5)
    assert query(limit=2, offset=4) == (every[::-1][4:], 5)
    assert query(offset=5) == ([], 5)
    assert query(limit=0) == ([], 5)
    assert query(state=S.FAILURE) == ([every[1]], 1)
    assert query(state=S.SUCCESS, ordering="created_at") == ([every[0], every[2], every[4]], 3)
    assert query(state=S.TIMEOUT) == ([], 0)

    def code(op_id: str) -> int:
        op = log.get(op_id)
        assert op is not None
        return int(op.state)

    by_state, _ = query(ordering="state")
    assert [code(i) for i in by_state] == [80, 80, 80, 90, 110]
    by_state_desc, _ = query(ordering="-state")
    assert [code(i) for i in by_state_desc] == [110, 90, 80, 80, 80]
    assert query(ordering="updated_at")[0][0] == every[0]

    with pytest.raises(ValueError, match="ordering"):
        log.query(ordering="operation_id")


def test_recording_an_operation_again_replaces_it_in_place(
    open_log: Callable[[int], OperationStore],
) -> None:
    log = open_log(1000)
    running = op_at("2026-01-01T00:00:01Z", S.RESOLVING)
    other = op_at("2026-01-01T00:00:02Z")
    log.record(running)
    log.record(other)
    done = running.through([S.RESOLVED, S.SUCCESS], "2026-01-01T00:00:03Z")
    log.record(done)
    assert [op.operation_id for op in log.all()] == [running.operation_id, other.operation_id]
    assert log.get(running.operation_id) == done
    assert log.get("no-such-id") is None


def test_the_log_evicts_the_oldest_finished_operations_past_its_limit(
    open_log: Callable[[int], OperationStore],
) -> None:
    log = open_log(3)
    assert log.limit == 3
    ops = [op_at(f"2026-01-01T00:00:0{n}Z") for n in range(6)]
    for op in ops:
        log.record(op)
    assert [op.operation_id for op in log.all()] == [op.operation_id for op in ops[-3:]]
    assert log.query()[1] == 3
    assert log.get(ops[0].operation_id) is None

    log.record(*[op_at("2026-01-02T00:00:00Z") for _ in range(5)])  # one batch past the limit
    assert len(log.all()) == 3

    # Operations still waiting or running are never evicted, even past the limit.
    waiting = [op_at("2026-01-03T00:00:00Z", S.SCHEDULED) for _ in range(4)]
    log.record(*waiting)
    assert [op.operation_id for op in log.all()] == [op.operation_id for op in waiting]


def test_a_restart_fails_the_operations_a_dead_process_left_running(
    open_log: Callable[[int], OperationStore],
) -> None:
    log = open_log(1000)
    finished = op_at("2026-01-01T00:00:01Z")
    left = op_at("2026-01-01T00:00:02Z", S.RESOLVING)
    queued = op_at("2026-01-01T00:00:03Z", S.CREATED)
    held = op_at("2026-01-01T00:00:04Z", S.SCHEDULED)
    log.record(finished, left, queued, held)
    ended = log.fail_unfinished("2026-01-01T00:00:09Z", "the daemon stopped")
    assert {op.operation_id for op in ended} == {left.operation_id, queued.operation_id}
    assert log.get(finished.operation_id) == finished
    assert log.get(held.operation_id) == held, "a held operation outlives restarts"
    for op_id in (left.operation_id, queued.operation_id):
        op = log.get(op_id)
        assert op is not None and op.state is S.FAILURE and op.message == "the daemon stopped"
    assert log.fail_unfinished("2026-01-01T00:00:10Z", "again") == []


def test_the_store_keeps_its_operation_log(store: Store) -> None:
    op = op_at("2026-01-01T00:00:01Z")
    store.operations.record(op)
    assert store.operations.get(op.operation_id) == op
    assert store.read().meta.serial == 0, "recording an operation is no store write"


# -- rejections ----------------------------------------------------------------------------


def test_the_store_keeps_the_rejected_plans_per_policy(store: Store) -> None:
    rejections = store.rejections
    assert rejections.read() == {}
    first = op_at("2026-01-01T00:00:01Z", S.CANCELLED)
    second = op_at("2026-01-01T00:00:02Z", S.CANCELLED)
    rejections.add("north", "sha256:aaa", first)
    rejections.add("south", "sha256:bbb", second)
    rejections.add("north", "sha256:ccc", second)  # a later rejection replaces the first
    assert rejections.read() == {
        "north": {
            "digest": "sha256:ccc",
            "operationId": second.operation_id,
            "state": "CANCELLED",
            "at": second.updated_at,
        },
        "south": {
            "digest": "sha256:bbb",
            "operationId": second.operation_id,
            "state": "CANCELLED",
            "at": second.updated_at,
        },
    }
    got = rejections.read()
    assert got is not None
    got["north"]["digest"] = "mutated"  # what a caller holds is a copy
    assert (rejections.read() or {})["north"]["digest"] == "sha256:ccc"
    rejections.keep(["north", "west"])
    assert set(rejections.read() or {}) == {"north"}
    rejections.lift("north")
    rejections.lift("never-rejected")
    assert rejections.read() == {}
    assert store.meta().serial == 0, "rejections are no store write"


# -- dump and restore (store copy) -----------------------------------------------------------


def _fill(store: Store) -> StoreDump:
    _apply(store, [_asset("A"), _asset("B"), _asset("C")], revision="r1",
           owner_labels={"Fleet/north": {"site": "n"}})
    _apply(store, [_asset("B", "FH12"), _asset("D")], ["Asset/A"], revision="r2")
    store.operations.record(op_at("2026-01-01T00:00:01Z"), op_at("2026-01-01T00:00:02Z", S.SCHEDULED))
    store.rejections.add("north", "sha256:aaa", op_at("2026-01-01T00:00:03Z", S.CANCELLED))
    store.outbox_add([_entry(1), _entry(1, "chat"), _entry(2)])
    return store.dump()


def test_a_dump_holds_everything_and_restores_into_any_store(
    store: Store, tmp_path: Path
) -> None:
    dump = _fill(store)
    assert not dump.empty
    assert dump.meta == store.meta() and dump.meta.serial == 2
    assert [o.key for o in dump.objects] == ["Asset/B", "Asset/C", "Asset/D"]
    assert dump.history == store.history()
    assert dump.operations == store.operations.all()
    assert dump.rejections == store.rejections.read()
    assert list(dump.outbox) == store.outbox_pending() and len(dump.outbox) == 3
    for target in (MemoryStore(), TinyDBStore(tmp_path / "copy")):
        with target.lock(5):
            target.restore(dump)
        assert target.dump() == dump
        assert target.read() == store.read()
        assert target.outbox_pending("hook") == store.outbox_pending("hook")
    # ...and back over what the store held: the same again, and it goes on from there.
    with store.lock(5):
        store.restore(MemoryStore().dump())
        assert store.dump().empty
        store.restore(dump)
    assert store.dump() == dump
    meta = _apply(store, [_asset("E")], revision="r3")
    assert meta.serial == 3 and meta.lineage == dump.meta.lineage
    assert _keys(store) == ["Asset/B", "Asset/C", "Asset/D", "Asset/E"]


def test_reading_an_empty_store_creates_nothing(store: Store, location: str) -> None:
    assert store.dump().empty
    assert store.read().meta.serial == 0 and store.history() == []
    assert store.operations.all() == [] and store.rejections.read() == {}
    assert store.outbox_pending() == []
    assert open_store(location).exists() == (location == "memory:")


# -- the writer lock ---------------------------------------------------------------------


def _hold(store: Store, held: threading.Event, release: threading.Event) -> threading.Thread:
    def hold() -> None:
        with store.lock(5):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold, name="holder")
    thread.start()
    assert held.wait(10)
    return thread


def test_a_second_writer_times_out_while_the_lock_is_held(store: Store) -> None:
    held, release = threading.Event(), threading.Event()
    holder = _hold(store, held, release)
    try:
        with pytest.raises(LockTimeout) as caught, store.lock(0.2):
            pass
        assert "locked by another" in caught.value.problems[0].error
    finally:
        release.set()
        holder.join(10)
    with store.lock(1):  # free again once the holder let go
        pass


def test_a_second_writer_waits_for_the_lock_and_then_holds_it(store: Store) -> None:
    held, release = threading.Event(), threading.Event()
    order: list[str] = []
    holder = _hold(store, held, release)

    def wait_then_write() -> None:
        with store.lock(30):
            order.append("second writer")

    waiter = threading.Thread(target=wait_then_write)
    waiter.start()
    waiter.join(0.3)
    order.append("holder releases")
    release.set()
    holder.join(10)
    waiter.join(30)
    assert order == ["holder releases", "second writer"]


def test_writers_under_the_lock_never_lose_a_write(store: Store) -> None:
    """Read-plan-write under the lock, from many threads at once: every write lands."""
    writers, rounds = 6, 5

    def write(n: int) -> None:
        for i in range(rounds):
            with store.lock(60):
                _apply(store, [_asset(f"W{n}-{i}")], revision=f"w{n}-{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    snapshot = store.read()
    assert snapshot.meta.serial == writers * rounds
    assert len(snapshot.objects) == writers * rounds
    assert [h["serial"] for h in store.history()] == list(range(1, writers * rounds + 1))


# -- the in-memory store: values in and out are copies ----------------------------------------


def test_the_memory_store_copies_values_in_and_out() -> None:
    """A caller mutating what it passed or got back changes nothing stored (TinyDB
    shares read-only documents with its cache instead, LIBRARIES.md)."""
    store = MemoryStore()
    asset = _asset("A")
    labels = {"Fleet/north": {"site": "n"}}
    _apply(store, [asset], owner_labels=labels)
    asset.spec["attributes"]["model"] = "mutated after apply"  # type: ignore[index]
    labels["Fleet/north"]["site"] = "mutated"
    got = store.read()
    read_spec: Any = got.objects[ObjectKey("Asset/A")].spec
    read_spec["attributes"]["model"] = "mutated after read"
    got.meta.owner_labels["Fleet/north"]["site"] = "mutated"  # type: ignore[index]
    store.history()[0]["revision"] = "mutated"
    op = dataclasses.replace(op_at("2026-01-01T00:00:01Z"), arguments={"dryRun": False})
    store.operations.record(op)
    op.arguments["dryRun"] = True  # type: ignore[index]
    store.operations.all()[0].arguments["dryRun"] = True  # type: ignore[index]

    fresh = store.read()
    assert fresh.objects[ObjectKey("Asset/A")] == _asset("A")
    assert not fresh.objects[ObjectKey("Asset/A")].drifted
    assert fresh.meta.owner_labels == {"Fleet/north": {"site": "n"}}
    assert store.history()[0]["revision"] == "rev"
    assert store.operations.all()[0].arguments == {"dryRun": False}


# -- opening a store ---------------------------------------------------------------------


def test_open_store_makes_the_store_its_location_names(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "state"), TinyDBStore)
    assert isinstance(open_store(str(tmp_path / "state")), TinyDBStore)
    assert isinstance(open_store("memory:"), MemoryStore)
    assert open_store("memory:").read().meta.serial == 0, "each memory: store starts empty"
    for url in ("postgresql://fleet:s3cret@db.example/fleet", "postgres://db.example/fleet"):
        opened = open_store(url)  # no I/O: the server is asked at the first read
        assert isinstance(opened, PostgresStore)
        assert "s3cret" not in opened.location
    assert open_store("postgresql://fleet:s3cret@db.example/fleet").location == (
        "postgresql://fleet@db.example/fleet"
    )
    with pytest.raises(UsageError) as caught:
        open_store("mysql://fleet:s3cret@db.example/fleet")
    problem = caught.value.problems[0]
    assert "mysql:// store is not supported by this version" in problem.error
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "command",
    [
        ("apply", "--auto-approve"),
        ("plan",),
        ("state", "show"),
        ("tasks", "set-status", "INSP-1", "done"),
        ("operations", "list"),
    ],
)
def test_a_store_url_is_refused_by_name_not_taken_for_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"NO_COLOR": "1"})
    result = runner.invoke(cli, [*command, "--state-dir", "postgresql://fleet:pw@db/fleet"])
    assert result.exit_code == 1, result.output
    assert "--state-dir takes a directory, not a postgresql:// URL" in result.output
    assert "--store" in result.output
    assert "pw@" not in result.output
    assert "Traceback" not in result.output and "Internal error" not in result.output
    assert list(tmp_path.iterdir()) == [], "no directory named postgresql: was made"
    # An unknown scheme given as --store is refused by its name.
    result = runner.invoke(cli, [*command, "--store", "mysql://fleet:pw@db/fleet"])
    assert result.exit_code == 1, result.output
    assert "mysql:// store is not supported by this version" in result.output
    assert list(tmp_path.iterdir()) == []


# -- the notification outbox ----------------------------------------------------------------


def _entry(n: int, target: str = "hook") -> OutboxEntry:
    event = {"id": f"event-{n}", "n": n}
    return OutboxEntry(f"event-{n}:{target}", target, event, "2025-01-01T00:00:00Z")


def test_the_outbox_keeps_entries_in_order_per_target_until_removed(store: Store) -> None:
    assert store.outbox_pending() == []
    assert store.outbox_add([_entry(1), _entry(1, "chat"), _entry(2), _entry(3)]) == {}
    assert [e.entry_id for e in store.outbox_pending("hook")] == [
        "event-1:hook",
        "event-2:hook",
        "event-3:hook",
    ]
    assert [e.entry_id for e in store.outbox_pending("hook", limit=1)] == ["event-1:hook"]
    assert store.outbox_pending("chat") == [_entry(1, "chat")]
    store.outbox_add([_entry(2)])  # an id already kept is not queued twice
    store.outbox_remove({"event-1:hook", "unknown"})
    assert [e.entry_id for e in store.outbox_pending()] == [
        "event-1:chat",
        "event-2:hook",
        "event-3:hook",
    ]


def test_the_outbox_is_bounded_dropping_the_oldest(store: Store) -> None:
    store.outbox_add([_entry(0)])
    dropped = store.outbox_add([_entry(n) for n in range(1, OUTBOX_LIMIT + 2)])
    assert dropped == {"hook": 2}
    pending = store.outbox_pending()
    assert len(pending) == OUTBOX_LIMIT
    assert pending[0].entry_id == "event-2:hook"


def test_the_outbox_bound_is_per_target_so_a_dead_one_pushes_out_only_its_own(
    store: Store,
) -> None:
    """A receiver that is down fills its own share: a healthy target's queued events stay."""
    store.outbox_add([_entry(0, "chat"), _entry(1, "chat")])
    dropped = store.outbox_add([_entry(n) for n in range(OUTBOX_LIMIT + 3)])
    assert dropped == {"hook": 3}
    assert [e.entry_id for e in store.outbox_pending("chat")] == ["event-0:chat", "event-1:chat"]
    hook = store.outbox_pending("hook")
    assert len(hook) == OUTBOX_LIMIT and hook[0].entry_id == "event-3:hook"


def test_the_outbox_survives_a_restart_and_leaves_the_state_file_alone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = TinyDBStore(state)
    first.outbox_add([_entry(1), _entry(2)])
    assert not (state / "state.json").exists()  # the object store was not written
    second = TinyDBStore(state)
    assert [e.event["n"] for e in second.outbox_pending()] == [1, 2]
    second.outbox_remove({"event-1:hook"})
    assert [e.event["n"] for e in TinyDBStore(state).outbox_pending()] == [2]


def test_the_store_keeps_what_the_notifier_told_apart_from_the_serial(
    store: Store, location: str
) -> None:
    assert store.notify_state() is None
    told = {"format": 1, "events": {"outcomes": [["abc", "failed"]], "failing": True}}
    store.set_notify_state(told)
    assert store.notify_state() == told
    again = {**told, "statuses": {"github": [["abc", "failure", ""]]}}
    store.set_notify_state(again)
    reopened = store if location == "memory:" else open_store(location)
    assert reopened.notify_state() == again
    assert store.meta().serial == 0 and store.history() == []  # not a write of the state
    assert store.dump().empty  # the daemon's, not the state's


def test_a_corrupt_notify_state_is_a_store_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "notify.json").write_text("[1, 2")
    with pytest.raises(StoreError) as caught:
        TinyDBStore(state).notify_state()
    [problem] = caught.value.problems
    assert "notification state" in problem.error and "told again" in problem.resolution


def test_a_corrupt_outbox_is_a_store_error_saying_what_is_lost(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.json").write_text("{not json")
    with pytest.raises(StoreError) as caught:
        TinyDBStore(state).outbox_pending()
    problem = caught.value.problems[0]
    assert "outbox" in problem.error and "lost" in problem.resolution


def test_the_store_keeps_the_rollback_pin_apart_from_the_serial(store: Store) -> None:
    assert store.pin() is None
    pin = Pin("a" * 40, 3, "ops", "2026-01-01T00:00:00Z", "op-1", "b" * 40)
    with store.lock(5):
        store.set_pin(pin)
    assert store.pin() == pin
    assert store.meta().serial == 0 and store.history() == []
    with store.lock(5):
        store.set_pin(None)
    assert store.pin() is None


def test_the_store_keeps_the_suspension_apart_from_the_serial_and_the_lock(
    store: Store, store_kind: str, location: str
) -> None:
    """`fleetward suspend` on every store: read back as set, never moving the serial, and
    set while another writer holds the lock (an apply in progress does not hold it up)."""
    with store.lock(5):
        pass  # a state directory is made by its first lock (a missing one is refused)
    assert store.suspension() is None
    suspension = Suspension("ops", "2026-01-01T00:00:00Z", "incident 42")
    held, release = threading.Event(), threading.Event()
    holder = _hold(store, held, release)
    try:
        store.set_suspension(suspension)
        assert store.suspension() == suspension
    finally:
        release.set()
        holder.join()
    assert store.meta().serial == 0 and store.history() == []
    if store_kind != "memory":
        assert open_store(location).suspension() == suspension, "another process sees it"
    if store_kind == "tinydb":  # the file it always was
        assert json.loads((Path(location) / SUSPEND_FILE).read_text()) == suspension.to_dict()
    replaced = Suspension("oncall", "2026-01-01T00:00:01Z", "")
    store.set_suspension(replaced)
    assert store.suspension() == replaced
    store.set_suspension(None)
    assert store.suspension() is None
    store.set_suspension(None)  # resuming what is not suspended changes nothing
    assert store.suspension() is None and store.meta().serial == 0
