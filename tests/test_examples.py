"""Every folder under examples/ validates and plans as its README says (the CLI in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Every manifest tree, however deep (examples/seed-payloads/workflow/manifests too), but not a
# folder named manifests inside a tree.
TREES = sorted(
    p.parent
    for p in EXAMPLES.glob("**/manifests")
    if p.is_dir() and "manifests" not in p.relative_to(EXAMPLES).parts[:-1]
)


def test_there_are_examples() -> None:
    assert TREES, "examples/ holds no manifest tree"
    assert EXAMPLES / "seed-payloads" / "workflow" in TREES


@pytest.mark.parametrize("tree", TREES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_example_validates_and_plans(tree: Path, tmp_path: Path) -> None:
    where = ["--no-git", "--source", str(tree)]
    validate = run_cli(["validate", *where])
    assert validate.returncode == 0, validate.stderr
    plan = run_cli(["plan", *where, "--state-dir", str(tmp_path / "state"), "--json"])
    assert plan.returncode == 0, plan.stderr
    result = json.loads(plan.stdout)
    assert result["errors"] == []
    assert result["summary"]["create"] == len(result["changes"]) > 0


def test_batch_asset_state_expectations_fail_after_the_first_apply(tmp_path: Path) -> None:
    """Once created, the example's `expect: CREATE` no longer holds: the seed's error."""
    tree = EXAMPLES / "batch-asset-state"
    where = ["--no-git", "--source", str(tree), "--state-dir", str(tmp_path / "state")]
    applied = run_cli(["apply", *where, "--auto-approve"])
    assert applied.returncode == 0, applied.stdout + applied.stderr
    plan = run_cli(["plan", *where, "--json"])
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


def test_seed_workflow_payload_keeps_the_seed_spelling() -> None:
    """The workflow example is the seed's request body: snake_case `step_id`, no placeholders."""
    text = (EXAMPLES / "seed-payloads/workflow/manifests/create-workflow.yaml").read_text()
    body = text[text.index("spec: {") :]
    assert '"step_id"' in body and "stepId" not in body
    assert "<string>" not in body
