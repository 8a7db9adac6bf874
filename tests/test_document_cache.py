"""The persistent document cache: warm runs parse only what changed, and no entry —
foreign, damaged, hostile or half-written — ever changes a plan or fails a run."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fleetward
import fleetward.loading
from fleetward.cli import cli
from fleetward.disk_cache import _HEADER, MAGIC, DiskCache
from fleetward.document_cache import _allowed, fingerprint
from support import isolated_env


def fleet(name: str, models: dict[str, str]) -> str:
    assets = "".join(
        f"    - externalAssetId: {ident}\n      attributes: {{model: {model}}}\n"
        for ident, model in models.items()
    )
    return f"apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: {name}\nspec:\n  assets:\n{assets}"


FILES = {
    f"manifests/{name}.yaml": fleet(name, {f"{name.upper()}-{i}": "FH16" for i in range(3)})
    for name in ("north", "south", "east")
}


class World:
    """A git repository, a state directory holding one apply, and the CLI run in-process
    with the parses counted."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.state = root / "state"
        self.env = isolated_env(root)
        self.repo.mkdir()
        self.git("init", "-q", "-b", "main")
        self.parsed: list[int] = []

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
        """`fleetward ARGS --source repo --state-dir state`; the JSON it printed."""
        result = CliRunner(env={"NO_COLOR": "1", "FLEETWARD_CACHE_DIR": None}).invoke(
            cli, [*args, "--source", str(self.repo), "--state-dir", str(self.state)]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    def plan(self, *flags: str) -> dict[str, Any]:
        """The plan as JSON, without the time it was made (the one field two runs differ in)."""
        self.parsed.clear()
        plan = self.run("plan", "--json", *flags)
        plan.pop("createdAt")
        return dict(plan)

    @property
    def entries(self) -> list[Path]:
        return sorted(
            p for p in (self.state / "cache" / "documents").rglob("f-*") if p.is_file()
        )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = World(tmp_path)
    world.commit(FILES)
    world.run("apply", "--auto-approve")  # makes the state directory: later runs are cached
    world.commit({"manifests/north.yaml": fleet("north", {"NORTH-0": "FH12", "NORTH-9": "X"})})
    real = fleetward.loading.load_file

    def counting(content: bytes) -> Any:
        world.parsed.append(len(content))
        return real(content)

    monkeypatch.setattr(fleetward.loading, "load_file", counting)
    yield world


def test_a_warm_plan_parses_nothing_unchanged_and_one_changed_file(world: World) -> None:
    cold = world.plan("--no-cache")
    assert len(world.parsed) == 3
    first = world.plan()
    assert first == cold
    assert len(world.parsed) == 3, "the cache starts empty (apply made the state directory)"
    assert world.plan() == cold
    assert world.parsed == [], "nothing changed: every file from the cache"

    world.commit({"manifests/south.yaml": fleet("south", {"SOUTH-0": "FH12"})})
    changed = world.plan()
    assert len(world.parsed) == 1, "one file changed: one parse"
    assert changed == world.plan("--no-cache")
    assert any(c["address"] == "Asset/SOUTH-1" for c in changed["changes"])


def test_no_cache_reads_and_writes_no_cache(world: World) -> None:
    before = world.entries
    world.plan("--no-cache")
    world.plan("--no-cache")
    assert len(world.parsed) == 3
    assert world.entries == before


def test_cache_dir_flag_and_variable(world: World, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    world.plan("--cache-dir", str(elsewhere))
    assert len(list(elsewhere.rglob("f-*"))) == 3
    world.plan("--cache-dir", str(elsewhere))
    assert world.parsed == []
    result = CliRunner(env={"NO_COLOR": "1", "FLEETWARD_CACHE_DIR": str(elsewhere)}).invoke(
        cli, ["validate", "--source", str(world.repo)]
    )
    assert result.exit_code == 0, result.output
    assert world.parsed == [], "validate reads the cache the variable names"


def _damage_every_entry(world: World, damage: str) -> None:
    for entry in world.entries:
        data = entry.read_bytes()
        if damage == "truncated":
            entry.write_bytes(data[: len(data) // 2])
        elif damage == "empty":
            entry.write_bytes(b"")
        elif damage == "garbage":
            middle = len(data) // 2
            entry.write_bytes(data[:middle] + os.urandom(64) + data[middle + 64 :])
        elif damage == "not an entry":
            entry.write_bytes(os.urandom(len(data)))
        elif damage == "another key's entry":
            other = next(e for e in world.entries if e != entry)
            key = other.name.encode()
            payload = data[_HEADER.size + len(entry.name) :]
            magic, fp, _, length, digest = _HEADER.unpack_from(data)
            entry.write_bytes(_HEADER.pack(magic, fp, len(key), length, digest) + key + payload)
        else:  # pragma: no cover
            raise AssertionError(damage)


@pytest.mark.parametrize(
    "damage", ["truncated", "empty", "garbage", "not an entry", "another key's entry"]
)
def test_a_damaged_entry_is_a_miss_never_an_error(world: World, damage: str) -> None:
    cold = world.plan("--no-cache")
    world.plan()
    _damage_every_entry(world, damage)
    assert world.plan() == cold
    assert len(world.parsed) == 3, "every damaged entry parsed afresh"
    assert world.plan() == cold
    assert world.parsed == [], "and rewritten whole"


def _entry(fp: bytes, key: str, payload: bytes) -> bytes:
    encoded = key.encode()
    digest = hashlib.blake2b(payload, digest_size=32).digest()
    return _HEADER.pack(MAGIC, fp, len(encoded), len(payload), digest) + encoded + payload


def test_an_entry_of_another_version_is_never_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another version's entries, even in this version's directory and carrying a result
    that would change the plan, are ignored."""
    cold = world.plan("--no-cache")
    world.plan()
    fingerprint.cache_clear()
    with monkeypatch.context() as patched:
        patched.setattr(fleetward, "__version__", "0.0.0-other")
        other = fingerprint()
    fingerprint.cache_clear()
    assert other != fingerprint()
    for entry in world.entries:
        # What the other version "parsed": nothing at all (every asset would be stopped).
        entry.write_bytes(_entry(other, entry.name, pickle.dumps(())))
    assert world.plan() == cold
    assert len(world.parsed) == 3


def test_an_entry_cannot_run_code(world: World, tmp_path: Path) -> None:
    """An entry that passes every check but names a function is refused, not called."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> Any:
            return (os.system, (f"touch {marker}",))

    cold = world.plan("--no-cache")
    world.plan()
    for entry in world.entries:
        entry.write_bytes(_entry(fingerprint(), entry.name, pickle.dumps((Evil(),))))
    assert world.plan() == cold
    assert not marker.exists()
    assert len(world.parsed) == 3


def test_a_cache_directory_others_may_write_is_not_used(world: World) -> None:
    cold = world.plan("--no-cache")
    world.plan()
    (world.state / "cache" / "documents").chmod(0o777)
    assert world.plan() == cold
    assert len(world.parsed) == 3, "not read"


def test_a_changed_blob_under_the_same_path_is_parsed_again(world: World) -> None:
    world.plan()
    # Same path, same size, one character changed.
    text = fleet("north", {"NORTH-0": "FH12", "NORTH-9": "X"}).replace("FH12", "FH14")
    world.commit({"manifests/north.yaml": text})
    warm = world.plan()
    assert len(world.parsed) == 1
    assert warm == world.plan("--no-cache")
    assert "FH14" in json.dumps(warm)


def test_concurrent_runs_share_the_cache(world: World) -> None:
    """Four processes fill an empty cache at once; every one plans what a cold run does,
    and the entries they left serve the next run whole."""
    cold = world.plan("--no-cache")
    cache = world.state / "cache" / "documents"
    for entry in world.entries:
        entry.unlink()
    command = [
        sys.executable,
        "-m",
        "fleetward",
        "plan",
        "--json",
        "--source",
        str(world.repo),
        "--state-dir",
        str(world.state),
    ]
    env = {**world.env, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        plan = json.loads(out)
        plan.pop("createdAt")
        assert plan == cold
    assert len(world.entries) == 3
    assert not [p for p in cache.rglob("*.tmp")], "no temporary file left behind"
    assert world.plan() == cold
    assert world.parsed == []


# -- the disk cache on its own ------------------------------------------------------------


def test_the_disk_cache_is_bounded_and_keeps_what_was_used_last(tmp_path: Path) -> None:
    cache = DiskCache.open(tmp_path / "c", bytes(32), _allowed, max_bytes=50_000)
    assert cache is not None
    value = ("x" * 10_000,)
    cache.put("first", value)
    for i in range(20):
        cache.put(f"k{i}", value)
        os.utime(cache._path(f"k{i}"), (1000 + i, 1000 + i))  # older than "first"
    leftover = cache.directory / "st" / ".first.1.dead.tmp"
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    cache.prune()
    sizes = [p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert sum(sizes) <= 50_000
    assert cache.get("first") == value, "the most recently used entry stays"
    assert cache.get("k0") is None, "the least recently used goes first"
    assert not leftover.exists(), "a dead writer's temporary file is swept"


def test_big_documents_expansions_are_kept_and_never_change_a_plan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetward.kinds.fleet import FleetPlugin

    expanded: list[str] = []
    real = FleetPlugin.expand

    def counting(self: FleetPlugin, document: Any, path: str) -> Any:
        expanded.append(document.name)
        return real(self, document, path)

    monkeypatch.setattr(FleetPlugin, "expand", counting)
    big = {
        f"manifests/big-{i}.yaml": fleet(f"big-{i}", {f"BIG{i}-{n}": "FH16" for n in range(40)})
        for i in range(2)
    }
    world.commit(big)
    cold = world.plan("--no-cache")
    assert world.plan() == cold
    expanded.clear()
    assert world.plan() == cold
    assert sorted(expanded) == ["east", "north", "south"], "only the small fleets again"
    assert len(list((world.state / "cache" / "documents").rglob("x-*"))) == 2

    # The same content under another path: its origins differ, so it is expanded there.
    world.commit(
        {
            "manifests/moved/big-0.yaml": big["manifests/big-0.yaml"]
            .replace("big-0", "big-9")
            .replace("BIG0", "BIG9")
        }
    )
    expanded.clear()
    moved = world.plan()
    assert "big-9" in expanded and "big-0" not in expanded
    assert moved == world.plan("--no-cache")

    # A damaged expansion entry is expanded again, with the same plan.
    for entry in (world.state / "cache" / "documents").rglob("x-*"):
        data = entry.read_bytes()
        entry.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    expanded.clear()
    assert world.plan() == moved
    assert {"big-0", "big-1", "big-9"} <= set(expanded)
