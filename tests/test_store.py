"""The TinyDB store: one atomic write per apply, lineage/serial, bounded history, the lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetward.errors import LockTimeout, StoreError
from fleetward.model import ObjectKey, ObjectState, StoredObject, spec_hash
from fleetward.store import BACKUP_FILE, HISTORY_LIMIT, STATE_FILE, ChangeSet, TinyDBStore
from fleetward.store.files import sweep_leftovers, write_atomic
from fleetward.store.operations import OperationLog
from fleetward.operations import Operation


def _asset(ident: str, model: str = "FH16") -> StoredObject:
    spec = {"externalAssetId": ident, "attributes": {"model": model}, "labels": {}}
    return StoredObject(
        key=ObjectKey(f"Asset/{ident}"),
        kind="Asset",
        spec=spec,
        status={"odometerKm": 12},
        owner="Fleet/north",
        state=ObjectState.ACTIVE,
        spec_hash=spec_hash(spec),
        generation=1,
        applied_revision="rev1",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )


def _apply(store: TinyDBStore, upserts=(), deletes=(), revision="rev") -> None:
    meta = store.meta()
    store.apply(
        ChangeSet(
            meta.lineage,
            meta.serial,
            revision,
            list(upserts),
            list(deletes),
            {"revision": revision},
        )
    )


def test_empty_store_reads_as_no_lineage_serial_zero(tmp_path: Path) -> None:
    snapshot = TinyDBStore(tmp_path / "state").read()
    assert snapshot.meta.lineage is None
    assert snapshot.meta.serial == 0
    assert dict(snapshot.objects) == {}
    assert not (tmp_path / "state").exists(), "reading must not create anything"


def test_apply_creates_lineage_and_bumps_serial(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    _apply(store, [_asset("A"), _asset("B")], revision="r1")
    first = store.meta()
    assert first.serial == 1 and first.lineage and first.last_applied_revision == "r1"
    _apply(store, [_asset("A", "FH12")], ["Asset/B"], revision="r2")
    second = store.read()
    assert second.meta.lineage == first.lineage, "lineage is fixed at creation"
    assert second.meta.serial == 2
    assert set(second.objects) == {"Asset/A"}
    assert second.objects[ObjectKey("Asset/A")].spec["attributes"]["model"] == "FH12"


def test_an_apply_is_one_file_replacement_and_keeps_a_backup(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    _apply(store, [_asset(f"A{i}") for i in range(50)])
    before = (tmp_path / STATE_FILE).read_bytes()
    inode = os.stat(tmp_path / STATE_FILE).st_ino
    _apply(store, [_asset(f"A{i}", "X") for i in range(50)])
    assert os.stat(tmp_path / STATE_FILE).st_ino != inode, "written by os.replace, not in place"
    assert (tmp_path / BACKUP_FILE).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name], "no temp file left behind"


def test_store_file_is_plain_tinydb_json(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    _apply(store, [_asset("A")])
    data = json.loads((tmp_path / STATE_FILE).read_text())
    assert set(data) == {"objects", "meta", "history"}
    (doc,) = data["objects"].values()
    assert doc["key"] == "Asset/A" and doc["status"] == {"odometerKm": 12}


def test_history_is_bounded(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    for i in range(HISTORY_LIMIT + 5):
        _apply(store, [_asset("A", str(i))], revision=f"r{i}")
    history = store.history()
    assert len(history) == HISTORY_LIMIT
    assert history[0]["revision"] == "r5" and history[-1]["revision"] == f"r{HISTORY_LIMIT + 4}"
    assert [h["serial"] for h in history] == list(range(6, HISTORY_LIMIT + 6))


def test_apply_refuses_when_serial_moved(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    _apply(store, [_asset("A")])
    meta = store.meta()
    with pytest.raises(StoreError):
        store.apply(ChangeSet(meta.lineage, meta.serial - 1, "r", [_asset("B")], [], {}))
    assert set(store.read().objects) == {"Asset/A"}


@pytest.mark.parametrize(
    "content", [b"{not json", b"[1, 2]", b'{"objects": {"1": {"kind": "Asset"}}}']
)
def test_corrupt_state_is_a_store_error_naming_the_backup(tmp_path: Path, content: bytes) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    with pytest.raises(StoreError) as info:
        TinyDBStore(tmp_path).read()
    problem = info.value.problems[0]
    assert "corrupt" in problem.error
    assert BACKUP_FILE in problem.resolution


def test_leftover_temp_files_are_swept(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    _apply(store, [_asset("A")])
    (tmp_path / ".state.json.tmp-abc123").write_text("half a write")
    _apply(store, [_asset("B")])
    assert not list(tmp_path.glob(".state.json.tmp-*"))


def _dead_pid() -> int:
    """The PID of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_sweep_takes_dead_writers_temp_files_in_every_directory_and_no_live_ones(
    tmp_path: Path,
) -> None:
    dead, alive = _dead_pid(), os.getpid()
    leftovers = [
        tmp_path / f".rejections.json.tmp-{dead}-a1",
        tmp_path / "status" / f".summary.json.tmp-{dead}-b2",
        tmp_path / "status" / "objects" / "Asset" / f".TRK-1.json.tmp-{dead}-c3",
        tmp_path / "status" / "pending" / f".0a1b.txt.tmp-{dead}-d4",
        tmp_path / "status" / ".plan.json.tmp-oldstyle",  # a writer's name not recorded…
    ]
    kept = [
        tmp_path / "status" / f".plan.txt.tmp-{alive}-e5",  # a live writer's, mid-write
        tmp_path / "status" / ".plan.txt.tmp-fresh",  # …and recent: maybe a live writer's
        tmp_path / "cache" / "git" / f".HEAD.tmp-{dead}-f6",  # not written by write_atomic
        tmp_path / "status" / "summary.json",
    ]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half a write")
    hour_ago = time.time() - 3601
    os.utime(leftovers[-1], (hour_ago, hour_ago))

    assert sorted(sweep_leftovers(tmp_path)) == sorted(leftovers)
    assert [p for p in leftovers if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_under_the_lock_every_temp_file_of_the_locked_file_is_a_leftover(tmp_path: Path) -> None:
    mine = tmp_path / f".state.json.tmp-{os.getpid()}-a1"
    other = tmp_path / f".operations.json.tmp-{os.getpid()}-b2"
    for path in (mine, other):
        path.write_text("{}")
    assert sweep_leftovers(tmp_path, locked=(STATE_FILE,)) == [mine]
    assert other.exists()


def test_write_atomic_names_its_temp_file_after_the_writing_process(tmp_path: Path) -> None:
    seen: list[str] = []

    def data() -> bytes:
        seen.extend(p.name for p in tmp_path.iterdir())
        return b"{}"

    write_atomic(tmp_path / "summary.json", data)
    (temp,) = seen
    assert temp.startswith(f".summary.json.tmp-{os.getpid()}-")
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def _hold_lock(state_dir: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    with TinyDBStore(state_dir).lock(5):
        ready.set()
        release.wait(10)


def test_second_writer_times_out_naming_the_holder_pid(tmp_path: Path) -> None:
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        started = time.monotonic()
        with pytest.raises(LockTimeout) as info:
            with TinyDBStore(tmp_path).lock(0.3):
                pass
        assert time.monotonic() - started >= 0.3
        assert str(holder.pid) in info.value.problems[0].error
    finally:
        release.set()
        holder.join(10)
    with TinyDBStore(tmp_path).lock(1):  # released when the holder exits
        pass


def test_a_long_lived_store_writes_exactly_what_a_fresh_one_reads(tmp_path: Path) -> None:
    """The daemon's store re-encodes only changed objects and keeps its snapshot:
    the file must still be plain `json.dumps` of the tables, and a fresh reader
    must see what the long-lived instance believes."""
    store = TinyDBStore(tmp_path)
    store.read()  # an empty store: the first apply's snapshot is its upserts
    _apply(store, [_asset(f"A{i}") for i in range(200)], revision="r1")
    for n in range(1, 6):
        store.read()
        _apply(
            store,
            [_asset(f"A{n}", model=f"FH{n}"), _asset(f"NEW{n}")],
            [ObjectKey(f"Asset/A{100 + n}")],
            revision=f"r{n + 1}",
        )
        raw = (tmp_path / STATE_FILE).read_text(encoding="utf-8")
        assert raw == json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False)
        fresh = TinyDBStore(tmp_path).read()
        assert fresh == store.read()
        assert fresh.objects[ObjectKey(f"Asset/A{n}")].spec["attributes"]["model"] == f"FH{n}"
        assert ObjectKey(f"Asset/A{100 + n}") not in fresh.objects
    # A hand edit (drift) is seen by the long-lived instance, not hidden by its memory.
    data = json.loads((tmp_path / STATE_FILE).read_text())
    doc = next(d for d in data["objects"].values() if d["key"] == "Asset/A7")
    doc["spec"]["attributes"]["model"] = "edited"
    (tmp_path / STATE_FILE).write_text(json.dumps(data))
    assert store.read().objects[ObjectKey("Asset/A7")].drifted


def test_a_file_replaced_while_it_is_parsed_is_not_remembered_as_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's apply can land between reading state.json and noting which
    file that was: the cache must name the file read, or the next apply would
    overwrite the other one's work with a stale serial check passing."""
    from fleetward.store import tinydb

    _apply(TinyDBStore(tmp_path), [_asset("A1")], revision="r1")
    daemon, other = TinyDBStore(tmp_path), TinyDBStore(tmp_path)
    real_read = tinydb.AtomicJSONStorage.read
    raced = []

    def read_then_race(self: tinydb.AtomicJSONStorage) -> object:
        data = real_read(self)
        if not raced:
            raced.append(True)
            _apply(other, [_asset("A2")], revision="r2")  # replaces the file now
        return data

    monkeypatch.setattr(tinydb.AtomicJSONStorage, "read", read_then_race)
    stale = daemon.read()
    assert ObjectKey("Asset/A2") not in stale.objects  # what was parsed: the old file
    monkeypatch.setattr(tinydb.AtomicJSONStorage, "read", real_read)
    now = daemon.read()
    assert ObjectKey("Asset/A2") in now.objects and now.meta.serial == 2
    with pytest.raises(StoreError, match="changed under the apply"):
        daemon.apply(
            ChangeSet(stale.meta.lineage, stale.meta.serial, "r3", [_asset("A3")], [], {})
        )


def test_a_write_sweeps_its_own_temp_files_without_walking_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole-directory walk is the daemon's, at start; each write only clears the
    temp files of the file it writes, under that file's lock."""
    store = TinyDBStore(tmp_path)
    _apply(store, [_asset("A")])
    (tmp_path / "status").mkdir()
    (tmp_path / ".state.json.tmp-abc123").write_text("half a write")
    walks: list[object] = []
    real_walk = os.walk

    def counting_walk(top: object, *args: object, **kwargs: object) -> object:
        walks.append(top)
        return real_walk(top, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "walk", counting_walk)
    _apply(store, [_asset("B")])
    OperationLog(tmp_path).record(Operation.new("poll", "2026-01-01T00:00:00Z"))
    assert walks == []
    assert not list(tmp_path.glob(".state.json.tmp-*"))
