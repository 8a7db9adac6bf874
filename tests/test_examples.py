"""Every folder under examples/ validates and plans as its README says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TREES = sorted(p.parent for p in EXAMPLES.glob("*/manifests"))


def test_there_are_examples() -> None:
    assert TREES, "examples/ holds no manifest tree"


@pytest.mark.parametrize("tree", TREES, ids=lambda p: p.name)
def test_example_validates_and_plans(tree: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "fleetward"]
    where = ["--no-git", "--source", str(tree)]
    validate = subprocess.run([*base, "validate", *where], capture_output=True, text=True)
    assert validate.returncode == 0, validate.stderr
    plan = subprocess.run(
        [*base, "plan", *where, "--state-dir", str(tmp_path / "state"), "--json"],
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stderr
    result = json.loads(plan.stdout)
    assert result["errors"] == []
    assert result["summary"]["create"] == len(result["changes"]) > 0


def test_batch_asset_state_expectations_fail_after_the_first_apply(tmp_path: Path) -> None:
    """Once created, the example's `expect: CREATE` no longer holds: the seed's error."""
    tree = EXAMPLES / "batch-asset-state"
    base = [sys.executable, "-m", "fleetward"]
    where = ["--no-git", "--source", str(tree), "--state-dir", str(tmp_path / "state")]
    subprocess.run([*base, "apply", *where, "--auto-approve"], check=True, capture_output=True)
    plan = subprocess.run([*base, "plan", *where, "--json"], capture_output=True, text=True)
    assert plan.returncode == 1
    (error,) = json.loads(plan.stdout)["errors"]
    assert error["error"] == "Failed batch validation"
    assert [i["externalAssetId"] for i in error["parameters"]["items"]] == [
        "acme-veh-0001",
        "acme-veh-0002",
        "acme-veh-0003",
    ]
    assert all(
        i["isValid"] is False and i["computedOperation"] == "NOTHING"
        for i in error["parameters"]["items"]
    )
