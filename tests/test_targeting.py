"""Targeted plans: `plan`/`apply --target` converge some objects now, the rest later.

In-process CLI against real git repositories and real state directories.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemon_support import GitRepo, ws_fixture  # noqa: F401  (pytest fixture)
from rollback_support import commit_version, objects, run

from fleetward.store import TinyDBStore


@pytest.fixture(name="at_v2")
def at_v2_fixture(ws) -> tuple[GitRepo, Path]:  # type: ignore[no-untyped-def]
    """v2 applied, v3 committed: TRK-1 updated, TRK-4, T-2 new, T-1 changed."""
    repo = GitRepo(ws.path("repo"), ws.env)
    state = ws.path("state")
    commit_version(repo, "v1")
    commit_version(repo, "v2")
    assert run(repo, state, "apply", "--auto-approve").exit_code == 0
    commit_version(repo, "v3")
    return repo, state


def _addresses(result_output: str) -> list[str]:
    return [c["address"] for c in json.loads(result_output)["changes"]]


def test_a_targeted_apply_changes_only_the_targeted_objects(at_v2: tuple[GitRepo, Path]) -> None:
    repo, state = at_v2
    before = objects(state)
    result = run(repo, state, "apply", "--target", "Asset/TRK-1", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Warning: targeted plan (Asset/TRK-1): 3 other change(s)" in result.output
    after = objects(state)
    assert after["Asset/TRK-1"]["spec"]["attributes"] == {"model": "FH20"}
    assert {k: v for k, v in after.items() if k != "Asset/TRK-1"} == {
        k: v for k, v in before.items() if k != "Asset/TRK-1"
    }
    # A following full plan shows the rest.
    rest = run(repo, state, "plan", "--json")
    assert rest.exit_code == 0
    assert sorted(_addresses(rest.output)) == ["Asset/TRK-4", "Task/T-1", "Task/T-2"]
    assert "targeted" not in json.loads(rest.output)


def test_the_targeted_apply_is_recorded_as_such(at_v2: tuple[GitRepo, Path]) -> None:
    repo, state = at_v2
    assert run(repo, state, "apply", "--target", "asset/TRK-*", "--auto-approve").exit_code == 0
    store = TinyDBStore(state)
    last = store.history()[-1]
    assert last["targeted"] == ["asset/TRK-*"]
    op = store.operations.get(last["operationId"])
    assert op is not None
    assert op.arguments["targets"] == ["asset/TRK-*"]
    assert "targeted (asset/TRK-*)" in op.message


def test_a_target_brings_the_new_objects_it_references(at_v2: tuple[GitRepo, Path]) -> None:
    repo, state = at_v2
    result = run(repo, state, "plan", "--target", "Task/T-2", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert sorted(_addresses(result.output)) == ["Asset/TRK-4", "Task/T-2"]
    assert (plan["targeted"], plan["leftOut"]) == (["Task/T-2"], 2)


def test_a_document_target_selects_what_it_declares(at_v2: tuple[GitRepo, Path]) -> None:
    repo, state = at_v2
    result = run(repo, state, "plan", "--target", "Fleet/ya*", "--json")
    assert sorted(_addresses(result.output)) == ["Asset/TRK-1", "Asset/TRK-4"]


def test_markdown_and_text_warn_that_the_store_will_not_equal_the_revision(
    at_v2: tuple[GitRepo, Path],
) -> None:
    repo, state = at_v2
    markdown = run(repo, state, "plan", "--target", "Asset/TRK-1", "--format", "markdown")
    assert "Warning: targeted plan (Asset/TRK-1)" in markdown.output
    assert "store will not equal the revision" in markdown.output


def test_a_saved_targeted_plan_keeps_its_targets(at_v2: tuple[GitRepo, Path], ws) -> None:  # type: ignore[no-untyped-def]
    repo, state = at_v2
    saved = ws.path("plan.json")
    made = run(repo, state, "plan", "--target", "Asset/TRK-1", "--out", str(saved))
    assert made.exit_code == 0, made.output
    assert json.loads(saved.read_text())["targeted"] == ["Asset/TRK-1"]
    applied = run(repo, state, "apply", str(saved))
    assert applied.exit_code == 0, applied.output
    assert "Warning: targeted plan" in applied.output
    assert TinyDBStore(state).history()[-1]["targeted"] == ["Asset/TRK-1"]
    both = run(repo, state, "apply", str(saved), "--target", "Asset/TRK-1")
    assert both.exit_code == 1 and "cannot be combined" in both.output


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("Asset/NOPE-*", "--target Asset/NOPE-* matches nothing"),
        ("Asset", "is not KIND/NAME"),
        ("Assett/TRK-1", "names an unknown kind"),
    ],
)
def test_a_target_that_matches_nothing_is_a_clear_error(
    at_v2: tuple[GitRepo, Path], target: str, error: str
) -> None:
    repo, state = at_v2
    before = (state / "state.json").read_bytes()
    for command in (("plan",), ("apply", "--auto-approve")):
        result = run(repo, state, *command, "--target", target)
        assert result.exit_code == 1, result.output
        assert error in result.output
        assert "Traceback" not in result.output
    assert (state / "state.json").read_bytes() == before


def test_a_target_with_no_changes_writes_nothing(at_v2: tuple[GitRepo, Path]) -> None:
    repo, state = at_v2
    serial = TinyDBStore(state).meta().serial
    result = run(repo, state, "apply", "--target", "Field/depot", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "No changes to the targeted objects" in result.output
    assert TinyDBStore(state).meta().serial == serial


def test_a_targeted_apply_reports_left_out_task_items_as_not_processed(
    at_v2: tuple[GitRepo, Path],
) -> None:
    repo, state = at_v2
    result = run(repo, state, "apply", "--target", "Asset/TRK-1", "--auto-approve", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)["output"]
    assert items["processedItems"] == []
    assert sorted(i["record"]["xid"] for i in items["unProcessedItems"]) == ["T-1", "T-2"]
    assert {i["message"] for i in items["unProcessedItems"]} == {
        "Item not processed: outside --target"
    }
    task = run(repo, state, "plan", "--target", "Task/T-2")
    assert "TaskBatch: Processed 1 items, Failed to process 1 items." in task.output


@pytest.mark.parametrize(
    ("target", "suggested"),
    [("Asset/TRK-1O", 'Did you mean "Asset/TRK-1"?'), ("Asset/XYZ-9", None)],
)
def test_a_mistyped_target_suggests_a_name_like_it_and_nothing_else(
    at_v2: tuple[GitRepo, Path], target: str, suggested: str | None
) -> None:
    repo, state = at_v2
    result = run(repo, state, "plan", "--target", target)
    assert result.exit_code == 1
    if suggested is None:
        assert "Did you mean" not in result.output
        assert "fleetward state show --kind Asset" in result.output
    else:
        assert suggested in result.output


def _last_operation(state: Path) -> dict[str, object]:
    last = TinyDBStore(state).operations.all()[-1]  # oldest first
    return {"arguments": last.arguments, "message": last.message}


def test_an_applied_saved_targeted_plan_records_its_targets(
    at_v2: tuple[GitRepo, Path],
    ws,  # type: ignore[no-untyped-def]
) -> None:
    repo, state = at_v2
    saved = ws.path("plan.json")
    assert run(repo, state, "plan", "--target", "Asset/TRK-1", "--out", str(saved)).exit_code == 0
    assert run(repo, state, "apply", str(saved)).exit_code == 0
    store = TinyDBStore(state)
    op = store.operations.get(store.history()[-1]["operationId"])
    assert op is not None
    assert op.arguments["targets"] == ["Asset/TRK-1"]


def test_a_targeted_apply_with_nothing_to_do_says_so_in_its_operation(
    at_v2: tuple[GitRepo, Path],
) -> None:
    repo, state = at_v2
    result = run(repo, state, "apply", "--target", "Field/depot", "--auto-approve")
    assert result.exit_code == 0, result.output
    recorded = _last_operation(state)
    assert recorded["arguments"] == {"targets": ["Field/depot"]}
    assert str(recorded["message"]).startswith("no changes to the targeted objects at ")


EVERYTHING = ("--target", "Asset/TRK-*", "--target", "Task/T-*")  # every change of v3


def test_targets_that_cover_every_change_warn_of_nothing_left_out(
    at_v2: tuple[GitRepo, Path],
) -> None:
    repo, state = at_v2
    planned = run(repo, state, "plan", *EVERYTHING, "--json")
    assert planned.exit_code == 0, planned.output
    assert (json.loads(planned.output)["targeted"], json.loads(planned.output)["leftOut"]) == (
        ["Asset/TRK-*", "Task/T-*"],
        0,
    )
    markdown = run(repo, state, "plan", *EVERYTHING, "--format", "markdown")
    assert markdown.exit_code == 0 and "Warning" not in markdown.output
    applied = run(repo, state, "apply", *EVERYTHING, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete!" in applied.output
    assert "Warning" not in applied.output and "left out" not in applied.output


def test_apply_json_says_what_a_targeted_apply_left_out(at_v2: tuple[GitRepo, Path]) -> None:
    repo, state = at_v2
    result = run(repo, state, "apply", "--target", "Asset/TRK-1", "--auto-approve", "--json")
    assert result.exit_code == 0, result.output
    told = json.loads(result.output)
    assert (told["targeted"], told["leftOut"]) == (["Asset/TRK-1"], 3)
    full = run(repo, state, "apply", "--auto-approve", "--json")
    assert full.exit_code == 0, full.output
    assert "targeted" not in json.loads(full.output)
    assert "leftOut" not in json.loads(full.output)


def test_a_targeted_apply_leaves_the_store_out_of_sync_until_a_full_apply(
    at_v2: tuple[GitRepo, Path],
) -> None:
    repo, state = at_v2
    v2 = TinyDBStore(state).meta().last_applied_revision
    v3 = repo.head()
    applied = run(repo, state, "apply", *EVERYTHING, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    # Every change of v3 is written, yet only a full apply says the store is at v3.
    store = TinyDBStore(state)
    assert store.meta().last_applied_revision == v2
    history = json.loads(run(repo, state, "state", "history", "--json").output)
    assert [(e["serial"], e["canRollBack"], bool(e.get("targeted"))) for e in history] == [
        (1, True, False),
        (2, False, True),
    ]
    table = run(repo, state, "state", "history").output
    assert "targeted" in table and "current" not in table
    refused = run(repo, state, "rollback", "--to", "2", "--auto-approve")
    assert refused.exit_code == 1 and "targeted apply" in refused.output
    full = run(repo, state, "apply", "--auto-approve")
    assert full.exit_code == 0, full.output
    assert "No changes" in full.output
    store = TinyDBStore(state)
    assert (store.meta().serial, store.meta().last_applied_revision) == (3, v3)
    rows = run(repo, state, "state", "history").output.splitlines()
    assert [r.split()[0] for r in rows if " current " in f" {r} "] == ["3"]
