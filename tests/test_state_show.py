"""Reading the store: `state show ADDRESS` describes one object, read commands never guess.

One object shows its spec, status, owner and the applies that created and last
changed it (the store's history is per apply, matched by time), as key/value
lines, JSON or YAML. An unknown kind, address or state directory is an error,
not an empty answer; and no command leaves behind a state directory it did not
write a store into. Real git repositories, the real CLI.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from support import isolated_env, run_cli


def fleet(*assets: str) -> str:
    lines = "".join(f"    - {{externalAssetId: {a}, name: {a}, type: truck}}\n" for a in assets)
    return (
        "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: north-yard}\n"
        f"spec:\n  assets:\n{lines}"
    )


class World:
    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.state = root / "state"
        self.env = isolated_env(root)
        (self.repo / "manifests").mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.repo, env=self.env, check=True, capture_output=True)

    def commit(self, text: str) -> None:
        (self.repo / "manifests" / "fleet.yaml").write_text(text, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "change")

    def run(
        self, *args: str, state: Path | None = None, process: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """The CLI in-process, or as `python -m fleetward` if `process`."""
        source = ["--source", str(self.repo)] if args[0] in ("plan", "apply") else []
        env = {**self.env, "FLEETWARD_STATE_DIR": str(state or self.state)}
        if not process:
            return run_cli([*args, *source], env=env)
        return subprocess.run(
            [sys.executable, "-m", "fleetward", *args, *source],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, process: bool = False) -> str:
        done = self.run(*args, process=process)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def error(self, *args: str, state: Path | None = None, process: bool = False) -> str:
        done = self.run(*args, state=state, process=process)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "Internal error" not in done.stderr
        return done.stderr


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_state_show_address_describes_one_object(world: World) -> None:
    world.commit(fleet("TRK-1", "TRK-2"))
    world.ok("apply", "--auto-approve")
    world.commit(fleet("TRK-1").replace("name: TRK-1", "name: Truck one"))
    world.ok("apply", "--auto-approve")
    history = json.loads(world.ok("state", "history", "--json"))
    assert [e["serial"] for e in history] == [1, 2]

    one = json.loads(world.ok("state", "show", "Asset/TRK-1", "-o", "json"))
    assert one["address"] == "Asset/TRK-1" and one["kind"] == "Asset" and one["id"] == "TRK-1"
    assert one["state"] == "active" and one["owner"] == "Fleet/north-yard"
    assert one["spec"]["name"] == "Truck one" and one["generation"] == 2
    assert [(e["event"], e["serial"], e["operationId"], e["trigger"]) for e in one["history"]] == [
        ("created", 1, history[0]["operationId"], "cli"),
        ("lastChanged", 2, history[1]["operationId"], "cli"),
    ]
    assert one["history"][1]["revision"] == one["appliedRevision"]

    stopped = json.loads(world.ok("state", "show", "Asset/TRK-2", "--json"))
    assert stopped["state"] == "stopped"
    assert [e["serial"] for e in stopped["history"]] == [1, 2]

    # YAML is the same value; the text form is key/value lines, spec and status below.
    shown_yaml = world.ok("state", "show", "asset/TRK-1", "-o", "yaml")
    as_yaml = YAML(typ="safe").load(io.StringIO(shown_yaml))
    assert as_yaml == one
    text = world.ok("state", "show", "Asset/TRK-1")
    lines = text.splitlines()
    assert lines[0] == "Asset/TRK-1"
    assert "  owner:            Fleet/north-yard" in lines
    assert "  generation:       2" in lines
    assert any(line.startswith("  created:") and "serial 1" in line for line in lines)
    assert any(line.startswith("  last changed:") and "serial 2" in line for line in lines)
    assert f"operation {history[1]['operationId']}, cli" in text
    assert "spec:" in lines and "  name: Truck one" in lines and "status: {}" in lines
    assert max(len(line) for line in lines) <= 80


def test_unknown_kind_and_address_are_errors_with_a_did_you_mean(world: World) -> None:
    world.commit(fleet("TRK-1", "TRK-2"))
    world.ok("apply", "--auto-approve")

    stderr = world.error("state", "show", "--kind", "Aset")
    assert "Unknown kind 'Aset'" in stderr and 'Did you mean "Asset"?' in stderr
    assert "asset" in world.ok("state", "show", "--kind", "asset").lower()  # any case works

    stderr = world.error("state", "show", "Aset/TRK-1")
    assert "Unknown kind 'Aset'" in stderr and 'Did you mean "Asset"?' in stderr
    stderr = world.error("state", "show", "Asset/TRK-3")
    assert "No object Asset/TRK-3 in the store" in stderr and "Did you mean" in stderr
    stderr = world.error("state", "show", "TRK-1")
    assert "'TRK-1' is not an object address" in stderr
    stderr = world.error("state", "show", "Asset/TRK-1", "--kind", "Asset")
    assert "ADDRESS and --kind cannot be combined" in stderr


@pytest.mark.parametrize(
    "command",
    [("state", "show"), ("state", "show", "Asset/TRK-1"), ("state", "history"), ("tasks", "list")],
)
def test_read_commands_refuse_a_state_directory_that_does_not_exist(
    world: World, command: tuple[str, ...]
) -> None:
    missing = world.repo.parent / "typo"
    stderr = world.error(*command, state=missing)
    assert f"No state directory at {missing}" in stderr
    assert "Check --state-dir" in stderr
    assert not missing.exists()


def test_a_refused_first_apply_leaves_no_state_directory(world: World) -> None:
    """Refused before anything is written: no directory a later read would call empty."""
    world.commit(fleet("TRK-1"))
    stderr = world.error("apply", process=True)  # no terminal, no --auto-approve: not confirmed
    assert "Apply needs confirmation" in stderr
    assert not world.state.exists()
    assert "No state directory at" in world.error("state", "show", process=True)

    world.ok("apply", "--auto-approve", process=True)
    shown: dict[str, Any] = json.loads(world.ok("state", "show", "--json", process=True))
    assert shown["serial"] == 1 and [o["key"] for o in shown["objects"]] == ["Asset/TRK-1"]


@pytest.mark.parametrize(
    ("applied_from", "expected"),
    [
        ("rev-b", [("created", 1), ("lastChanged", 2)]),  # changed by the second apply
        ("rev-a", [("created", 1)]),  # the second apply, same second, did not touch it
    ],
)
def test_two_applies_within_one_second_are_told_apart_by_revision(
    applied_from: str, expected: list[tuple[str, int]]
) -> None:
    """Applies are stamped to the second; the object's appliedRevision says which of two
    applies in the same second last wrote it."""
    import dataclasses

    from fleetward.cli.state import describe_object
    from fleetward.model import ObjectKey, ObjectState, ObjectView, StoredObject

    at = "2026-12-03T10:00:00Z"
    first = StoredObject.first(
        ObjectKey("Asset/TRK-1"),
        "Asset",
        ObjectView(ObjectState.ACTIVE, "Fleet/north-yard", {"name": "one"}),
        "rev-a",
        at,
    )
    obj = dataclasses.replace(first, applied_revision=applied_from)
    history = [
        {"serial": 1, "revision": "rev-a", "time": at, "operationId": "op-1"},
        {"serial": 2, "revision": "rev-b", "time": at, "operationId": "op-2"},
    ]
    described = describe_object(obj, history, {})
    assert [(e["event"], e["serial"]) for e in described["history"]] == expected
