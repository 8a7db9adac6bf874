"""The TinyDB store's snapshot entry: a command reads the store warm, and only ever for the
exact state file the entry was made from — another process's apply, a hand edit (even one
that keeps the file's size and mtime) or a damaged entry gives the plan a cold read gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support import isolated_env

from fleetward.cli import cli
from fleetward.store import tinydb
from fleetward.store.snapshot_file import SNAPSHOT_DIR, SNAPSHOT_FILE


def fleet(name: str, models: dict[str, str]) -> str:
    assets = "".join(
        f"    - externalAssetId: {ident}\n      attributes: {{model: {model}}}\n"
        for ident, model in models.items()
    )
    return f"apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: {name}\nspec:\n  assets:\n{assets}"


class World:
    """A git repository, a state directory holding one apply, and the CLI in-process with
    the reads of state.json counted."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.state = root / "state"
        self.env = isolated_env(root)
        self.repo.mkdir()
        self.git("init", "-q", "-b", "main")
        self.file_reads = 0

    @property
    def state_file(self) -> Path:
        return self.state / "state.json"

    @property
    def entry(self) -> Path:
        return self.state / SNAPSHOT_DIR / SNAPSHOT_FILE

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.repo, env=self.env, check=True, capture_output=True)

    def commit(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            path = self.repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "change")

    def run(self, *args: str) -> Any:
        result = CliRunner(env={"NO_COLOR": "1", "FLEETWARD_CACHE_DIR": None}).invoke(
            cli, [*args, "--source", str(self.repo), "--state-dir", str(self.state)]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    def plan(self, *flags: str) -> dict[str, Any]:
        """The plan as JSON without its time; `file_reads` counts this run's reads."""
        self.file_reads = 0
        plan = self.run("plan", "--json", *flags)
        plan.pop("createdAt")
        return dict(plan)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = World(tmp_path)
    world.commit(
        {
            f"manifests/{name}.yaml": fleet(name, {f"{name.upper()}-{i}": "FH16" for i in range(3)})
            for name in ("north", "south")
        }
    )
    world.run("apply", "--auto-approve")
    world.commit({"manifests/north.yaml": fleet("north", {"NORTH-0": "FH12", "NORTH-9": "X"})})
    real = tinydb.AtomicJSONStorage.read

    def counting(self: tinydb.AtomicJSONStorage) -> Any:
        world.file_reads += 1
        return real(self)

    monkeypatch.setattr(tinydb.AtomicJSONStorage, "read", counting)
    yield world


def test_an_apply_leaves_the_entry_and_a_plan_reads_no_state_file(world: World) -> None:
    assert world.entry.is_file()
    warm = world.plan()
    assert world.file_reads == 0, "the store came from the entry"
    assert warm == world.plan("--no-cache")
    assert world.file_reads == 1
    assert any(c["address"] == "Asset/NORTH-9" for c in warm["changes"])


def test_no_cache_neither_reads_nor_writes_the_entry(world: World) -> None:
    world.entry.unlink()
    world.plan("--no-cache")
    assert not world.entry.exists()
    world.plan()
    assert world.entry.is_file(), "a cold read leaves the entry for the next command"
    world.plan()
    assert world.file_reads == 0


def test_an_apply_from_the_entry_writes_the_whole_store(world: World) -> None:
    world.run("apply", "--auto-approve")
    assert world.file_reads == 0, "the apply read the store from the entry"
    world.commit({"manifests/south.yaml": fleet("south", {"SOUTH-0": "FH12"})})
    world.run("apply", "--auto-approve")
    cold = world.plan("--no-cache")
    assert cold["changes"] == [], "the written store holds every object"
    state = json.loads(world.state_file.read_text())
    assert len(state["history"]) == 3, "and the history of every apply"
    active = [d["key"] for d in state["objects"].values() if d["state"] == "active"]
    assert sorted(active) == [
        "Asset/NORTH-0",
        "Asset/NORTH-9",
        "Asset/SOUTH-0",
    ]
    assert world.plan() == cold
    assert world.file_reads == 0


def test_an_apply_by_another_process_makes_the_entry_stale(world: World) -> None:
    env = {**world.env, "PYTHONPATH": os.pathsep.join(sys.path)}
    world.plan()
    subprocess.run(
        [sys.executable, "-m", "fleetward", "apply", "--auto-approve", "--no-cache"]
        + ["--source", str(world.repo), "--state-dir", str(world.state)],
        env=env,
        check=True,
        capture_output=True,
    )
    after = world.plan()
    assert world.file_reads == 1, "the entry was for the file before the apply"
    assert after == world.plan("--no-cache")
    assert after["changes"] == []


def _edit_spec(world: World, old: str, new: str, keep_mtime: bool) -> None:
    """Edit the stored spec of SOUTH-1 in state.json by hand, in place (same inode)."""
    before = os.stat(world.state_file)
    state = json.loads(world.state_file.read_text())
    doc = next(d for d in state["objects"].values() if d["key"] == "Asset/SOUTH-1")
    assert doc["spec"]["attributes"]["model"] == old
    doc["spec"]["attributes"]["model"] = new
    with world.state_file.open("r+") as fh:
        fh.write(json.dumps(state, separators=(",", ":"), ensure_ascii=False))
        fh.truncate()
    if keep_mtime:
        os.utime(world.state_file, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(world.state_file).st_size == before.st_size


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["edited", "edited-same-size-and-mtime"])
def test_a_hand_edit_of_the_state_file_is_drift_never_hidden(
    world: World, keep_mtime: bool
) -> None:
    world.plan()
    assert world.file_reads == 0
    _edit_spec(world, "FH16", "FH17", keep_mtime)
    warm = world.plan()
    assert world.file_reads == 1, "the entry is not for the edited file"
    assert warm == world.plan("--no-cache")
    drift = [c for c in warm["changes"] if c["address"] == "Asset/SOUTH-1"]
    assert len(drift) == 1 and drift[0]["action"] == "update"


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "symlink"])
def test_a_damaged_entry_is_a_cold_read_never_an_error(world: World, damage: str) -> None:
    cold = world.plan("--no-cache")
    data = world.entry.read_bytes()
    if damage == "truncate":
        world.entry.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        world.entry.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    elif damage == "empty":
        world.entry.write_bytes(b"")
    elif damage == "garbage":
        world.entry.write_bytes(os.urandom(len(data)))
    else:
        target = world.entry.with_name("elsewhere")
        target.write_bytes(data)
        world.entry.unlink()
        world.entry.symlink_to(target)
    assert world.plan() == cold
    assert world.file_reads == 1
    if damage != "symlink":
        world.plan()
        assert world.file_reads == 0, "the cold read replaced the entry"


def test_objects_documents_from_the_entry_are_the_stored_documents(world: World) -> None:
    from fleetward.store.snapshot_file import SnapshotFile

    found = SnapshotFile(world.state_file).load()
    assert found is not None
    _, decoded = found
    on_disk = json.loads(world.state_file.read_text())
    assert decoded.objects_table() == on_disk["objects"]
    assert {k: v for k, v in on_disk.items() if k != "objects"} == decoded.tables
