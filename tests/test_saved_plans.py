"""A saved plan is applied only if it is one fleetward could have made for this store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def _fleetward(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetward", *args, "--no-git"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def planned(tmp_path: Path) -> Path:
    """A store with the bundled manifests applied, and a saved plan that updates and stops."""
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    assert _fleetward(tmp_path, "apply", "--auto-approve").returncode == 0
    north = tmp_path / "manifests" / "fleets" / "north-yard.yaml"
    text = north.read_text().replace("model: FH16, year: 2022", "model: FH16 Aero, year: 2022")
    north.write_text(text[: text.index("    - externalAssetId: TRL-2001")])
    result = _fleetward(tmp_path, "plan", "--out", "plan.json")
    assert result.returncode == 0, result.stderr
    return tmp_path


def _first(kind: str, action: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def pick(plan: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in plan["changes"] if c["kind"] == kind and c["action"] == action)

    return pick


def _set_revision(plan: dict[str, Any]) -> None:
    plan["revision"] = None


def _int_address(plan: dict[str, Any]) -> None:
    _first("Asset", "update")(plan)["address"] = 5


def _list_spec(plan: dict[str, Any]) -> None:
    _first("Asset", "update")(plan)["after"]["spec"] = [1]


def _delete_asset(plan: dict[str, Any]) -> None:
    change = _first("Asset", "stop")(plan)
    change["action"], change["after"] = "delete", None


def _create_without_after(plan: dict[str, Any]) -> None:
    change = _first("Asset", "update")(plan)
    change["action"], change["after"] = "create", None


def _create_existing(plan: dict[str, Any]) -> None:
    _first("Asset", "update")(plan)["action"] = "create"


def _other_id(plan: dict[str, Any]) -> None:
    _first("Asset", "update")(plan)["after"]["spec"]["externalAssetId"] = "TRK-9999"


def _base(plan: dict[str, Any]) -> None:
    plan["base"] = "0" * 40


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (_set_revision, "is not a valid fleetward plan"),
        (_int_address, "names no object of a known kind"),
        (_list_spec, "spec must be a mapping"),
        (_delete_asset, "action delete is not possible for a Asset"),
        (_create_without_after, "'after' must be present exactly when not deleting"),
        (_other_id, "does not match the address"),
        (_create_existing, "Saved plan does not match the store"),
        (_base, "was made with plan --base and cannot be applied"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_edited_plan_is_refused_and_changes_nothing(
    planned: Path, edit: Callable[..., None], says: str
) -> None:
    plan_file = planned / "plan.json"
    plan = json.loads(plan_file.read_text())
    edit(plan)
    plan_file.write_text(json.dumps(plan))
    state = planned / ".fleetward" / "state.json"
    before = state.read_bytes()
    result = _fleetward(planned, "apply", "plan.json")
    assert result.returncode == 1
    assert says in result.stderr
    assert "Traceback" not in result.stderr and "Internal error" not in result.stderr
    assert state.read_bytes() == before


def test_unedited_plan_applies(planned: Path) -> None:
    result = _fleetward(planned, "apply", "plan.json")
    assert result.returncode == 0, result.stderr
    assert "0 created, 1 updated, 1 stopped, 0 deleted" in result.stdout


def test_applying_a_saved_plan_shows_the_plan_it_applied(planned: Path) -> None:
    shown = _fleetward(planned, "plan").stdout.split("Plan: ")[0]
    result = _fleetward(planned, "apply", "plan.json")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(shown), out  # as `plan` printed it, object lines and diffs
    assert out.index("~ Asset/TRK-1001") < out.index("■ Asset/TRL-2001") < out.index(
        "Apply complete!"
    )
    again = _fleetward(planned, "apply", "plan.json")
    assert again.returncode == 1 and "stale" in again.stderr
    assert again.stdout == ""  # a refused plan is not shown as if it applied


def test_base_plan_json_cannot_be_applied(tmp_path: Path) -> None:
    """`plan --base --json` output names its base, and apply refuses it."""
    repo = tmp_path / "repo"
    shutil.copytree(MANIFESTS, repo / "manifests")
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e.x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e.x",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v1"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    (repo / "manifests" / "fleets" / "field-equipment.yaml").unlink()
    subprocess.run(["git", "commit", "-qam", "v2"], cwd=repo, check=True, env=env)
    base = [sys.executable, "-m", "fleetward"]
    out = subprocess.run(
        [*base, "plan", "--base", "HEAD~1", "--json", "--allow-mass-stop"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    plan = json.loads(out.stdout)
    assert len(plan["base"]) == 40 and plan["summary"]["stop"] == 4
    (tmp_path / "b.json").write_text(out.stdout)
    applied = subprocess.run(
        [*base, "apply", str(tmp_path / "b.json"), "--state-dir", str(tmp_path / "s")],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert applied.returncode == 1
    assert "cannot be applied" in applied.stderr
    assert not (tmp_path / "s" / "state.json").exists()
