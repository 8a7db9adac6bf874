"""Rollback: back to an earlier apply's revision, read from Git again, and pinned there.

In-process CLI against real git repositories and real state directories; the
daemon's side of the pin is tests/test_rollback_daemon.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemon_support import GitRepo, ws_fixture  # noqa: F401  (pytest fixture)
from rollback_support import commit_version, desired_view, objects, run

from fleetward.rollback import RollbackPoint, rollback_point
from fleetward.store import TinyDBStore


@pytest.fixture(name="applied")
def applied_fixture(ws) -> tuple[GitRepo, Path, dict[str, str]]:  # type: ignore[no-untyped-def]
    """v1, v2 and v3 applied in turn (serials 1, 2, 4: T-1's status is set at 3)."""
    repo = GitRepo(ws.path("repo"), ws.env)
    state = ws.path("state")
    revisions = {}
    for version in ("v1", "v2"):
        revisions[version] = commit_version(repo, version)
        assert run(repo, state, "apply", "--auto-approve").exit_code == 0
    done = run(repo, state, "tasks", "set-status", "T-1", "in-progress")
    assert done.exit_code == 0, done.output
    revisions["v3"] = commit_version(repo, "v3")
    assert run(repo, state, "apply", "--auto-approve").exit_code == 0
    return repo, state, revisions


def _active(state: Path) -> dict[str, object]:
    return {k: v for k, v in desired_view(state).items() if v[0] == "active"}


def test_rollback_to_v1s_serial_gives_exactly_v1s_desired_objects(
    applied: tuple[GitRepo, Path, dict[str, str]],
    ws,  # type: ignore[no-untyped-def]
) -> None:
    repo, state, revisions = applied
    result = run(repo, state, "rollback", "--to", "1", "--auto-approve", "--by", "ops")
    assert result.exit_code == 0, result.output
    assert "Rolled back to revision " + revisions["v1"][:7] in result.output
    assert "Pinned" in result.output
    # The same revision applied to a fresh store: its desired objects.
    fresh = ws.path("fresh")
    assert run(repo, fresh, "apply", "--auto-approve", "--ref", revisions["v1"]).exit_code == 0
    assert _active(state) == _active(fresh)
    stored = objects(state)
    assert stored["Asset/TRK-2"]["state"] == "active", "a stopped asset is restarted"
    assert stored["Asset/TRK-3"]["state"] == "stopped"
    assert stored["Asset/TRK-1"]["spec"]["attributes"] == {"model": "FH16"}
    # Runtime status is never rolled back: T-1 stays as people set it.
    assert stored["Task/T-1"]["status"]["status"] == "in-progress"
    assert stored["Task/T-1"]["spec"]["description"] == "First check"
    # The store equals v1 now: a plan of v1 shows nothing to do.
    again = run(repo, state, "plan", "--ref", revisions["v1"], "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_rollback_is_an_operation_with_its_trigger_and_a_history_entry(
    applied: tuple[GitRepo, Path, dict[str, str]],
) -> None:
    repo, state, revisions = applied
    assert (
        run(repo, state, "rollback", "--to", revisions["v1"][:8], "--auto-approve").exit_code == 0
    )
    store = TinyDBStore(state)
    last = store.history()[-1]
    assert (last["revision"], last["rollbackTo"]) == (revisions["v1"], 1)
    op = store.operations.get(last["operationId"])
    assert op is not None
    assert (op.trigger, op.state.name) == ("rollback", "SUCCESS")
    assert op.arguments["rollbackTo"] == revisions["v1"]
    pin = store.pin()
    assert pin is not None
    assert (pin.revision, pin.serial, pin.rolled_back_from) == (revisions["v1"], 1, revisions["v3"])


def test_history_marks_what_can_be_rolled_back_to_and_the_pin(
    applied: tuple[GitRepo, Path, dict[str, str]],
) -> None:
    repo, state, _ = applied
    before = json.loads(run(repo, state, "state", "history", "--json").output)
    # Serial 3 is a status change; 4 is the current revision.
    assert [e["canRollBack"] for e in before] == [True, True, False, False]
    assert run(repo, state, "rollback", "--to", "2", "--auto-approve").exit_code == 0
    table = run(repo, state, "state", "history")
    assert "ROLLBACK" in table.output and "pinned" in table.output, table.output
    assert "Pinned to revision" in table.output
    after = json.loads(run(repo, state, "state", "history", "--json").output)
    assert [e.get("pinned", False) for e in after] == [False, True, False, False, False]


def test_rollback_asks_for_confirmation_like_apply(
    applied: tuple[GitRepo, Path, dict[str, str]],
) -> None:
    repo, state, _ = applied
    serial = TinyDBStore(state).meta().serial
    refused = run(repo, state, "rollback", "--to", "1")  # CliRunner's stdin is no terminal
    assert refused.exit_code == 1
    assert "Apply needs confirmation" in refused.output
    assert "run the rollback again with --auto-approve" in refused.output
    assert "plan --out" not in refused.output
    with_ref = run(repo, state, "rollback", "--to", "1", "--ref", "main", "--auto-approve")
    assert with_ref.exit_code == 1 and "rollback does not take --ref" in with_ref.output
    store = TinyDBStore(state)
    assert store.meta().serial == serial
    assert store.pin() is None, "an unconfirmed rollback pins nothing"


def test_resume_lifts_the_pin_and_names_the_head(
    applied: tuple[GitRepo, Path, dict[str, str]],
) -> None:
    repo, state, revisions = applied
    assert run(repo, state, "rollback", "--to", "1", "--auto-approve").exit_code == 0
    result = run(repo, state, "resume")
    assert result.exit_code == 0, result.output
    assert "Rollback pin lifted" in result.output
    assert f"Next: revision {revisions['v3'][:7]}" in result.output
    assert TinyDBStore(state).pin() is None
    again = run(repo, state, "resume")
    assert "nothing to do" in again.output


@pytest.mark.parametrize(
    ("to", "error"),
    [
        ("99", "No apply at serial 99"),
        ("3", "Serial 3 cannot be rolled back to"),
        ("4", "Nothing to roll back: the store is at revision"),
        ("deadbeef", "No apply of revision deadbeef"),
        ("not-a-sha", "is neither a serial nor a revision"),
    ],
)
def test_a_rollback_the_history_cannot_serve_is_a_clear_error(
    applied: tuple[GitRepo, Path, dict[str, str]], to: str, error: str
) -> None:
    repo, state, _ = applied
    before = (state / "state.json").read_bytes()
    result = run(repo, state, "rollback", "--to", to, "--auto-approve")
    assert result.exit_code == 1
    assert error in result.output
    assert "Traceback" not in result.output and "Internal error" not in result.output
    assert (state / "state.json").read_bytes() == before
    assert TinyDBStore(state).pin() is None


def test_a_revision_gone_from_git_is_a_clear_error(ws) -> None:  # type: ignore[no-untyped-def]
    repo = GitRepo(ws.path("repo"), ws.env)
    state = ws.path("state")
    commit_version(repo, "v1")
    assert run(repo, state, "apply", "--auto-approve").exit_code == 0
    commit_version(repo, "v2")
    assert run(repo, state, "apply", "--auto-approve").exit_code == 0
    # Rewrite history so v1 is no longer in the repository at all.
    repo.git("checkout", "-q", "--orphan", "fresh")
    repo.git("commit", "-q", "-m", "squashed")
    repo.git("branch", "-D", "main")
    repo.git("branch", "-m", "main")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    result = run(repo, state, "rollback", "--to", "1", "--auto-approve")
    assert result.exit_code == 1
    assert "Cannot roll back to revision" in result.output
    assert "the source does not have it" in result.output
    assert "Traceback" not in result.output
    assert TinyDBStore(state).pin() is None


def test_a_source_error_other_than_a_missing_revision_is_told_as_it_is(  # type: ignore[no-untyped-def]
    applied,
) -> None:
    repo, state, _ = applied
    result = run(repo, state, "rollback", "--to", "1", "--path", "elsewhere", "--auto-approve")
    assert result.exit_code == 1
    assert "Manifest path 'elsewhere' does not exist at revision" in result.output
    assert "the source does not have it" not in result.output
    assert "force-push" not in result.output
    assert TinyDBStore(state).pin() is None


# -- the choice of an apply, without I/O ---------------------------------------------------------

_A, _B = "a" * 40, "b" * 40


def _entry(serial: int, revision: str, **extra: object) -> dict[str, object]:
    counts = {"create": 1, "update": 0, "stop": 0, "delete": 0}
    return {"serial": serial, "revision": revision, "time": "t", "counts": counts, **extra}


def test_a_revision_names_its_latest_apply() -> None:
    history = [_entry(1, _A), _entry(2, _B), _entry(3, _A), _entry(4, _B)]
    assert rollback_point(history, "aaaa", _B) == RollbackPoint(3, _A, "t")


def test_an_ambiguous_revision_prefix_is_refused() -> None:
    other = "a" * 39 + "c"
    with pytest.raises(Exception, match="ambiguous"):
        rollback_point([_entry(1, _A), _entry(2, other)], "aaaa", _B)


def test_a_directory_revision_cannot_be_rolled_back_to() -> None:
    with pytest.raises(Exception, match="cannot be rolled back"):
        rollback_point([_entry(1, "sha256:" + "0" * 64), _entry(2, _B)], "1", _B)


def test_a_targeted_apply_cannot_be_rolled_back_to() -> None:
    history = [_entry(1, _A), _entry(2, _B, targeted=["Asset/TRK-1"])]
    with pytest.raises(Exception, match="targeted") as refused:
        rollback_point(history, "2", _A)
    assert refused.value.problems[0].parameters["why"] == "targeted"  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="targeted"):
        rollback_point(history, "bbbb", _A)


def test_a_revision_names_its_latest_whole_apply() -> None:
    history = [_entry(1, _B), _entry(2, _A), _entry(3, _B, targeted=["Asset/TRK-1"])]
    assert rollback_point(history, "bbbb", _A) == RollbackPoint(1, _B, "t")


def test_after_a_targeted_apply_the_last_whole_revision_can_be_rolled_back_to() -> None:
    # Serial 2 wrote part of B over A: going back to A undoes it, not "nothing to do".
    history = [_entry(1, _A), _entry(2, _B, targeted=["Asset/TRK-1"])]
    assert rollback_point(history, "1", _A) == RollbackPoint(1, _A, "t")


def test_plan_apply_and_apply_file_all_note_the_rollback_pin(
    applied: tuple[GitRepo, Path, dict[str, str]],
    ws,  # type: ignore[no-untyped-def]
) -> None:
    repo, state, revisions = applied
    assert run(repo, state, "rollback", "--to", "2", "--auto-approve").exit_code == 0
    note = f"Note: the store is pinned to revision {revisions['v2'][:7]} by a rollback"
    saved = ws.path("plan.json")
    planned = run(repo, state, "plan", "--out", str(saved))
    assert planned.exit_code == 0, planned.output
    assert planned.output.count(note) == 1
    markdown = run(repo, state, "plan", "--format", "markdown")
    assert markdown.output.count(note) == 1
    as_json = run(repo, state, "plan", "--json")
    assert note not in as_json.output  # JSON only on its output
    from_file = run(repo, state, "apply", str(saved))
    assert from_file.exit_code == 0, from_file.output
    assert from_file.output.count(note) == 1
    assert run(repo, state, "rollback", "--to", "2", "--auto-approve").exit_code == 0
    applied_now = run(repo, state, "apply", "--auto-approve")
    assert applied_now.exit_code == 0, applied_now.output
    assert applied_now.output.count(note) == 1


def test_rollback_says_uncommitted_edits_are_ignored_as_apply_does(
    applied: tuple[GitRepo, Path, dict[str, str]],
) -> None:
    repo, state, revisions = applied
    (repo.root / "manifests" / "fleet.yaml").write_text("# edited, not committed\n")
    result = run(repo, state, "rollback", "--to", "2", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert (
        f"1 uncommitted change under manifests/ is ignored (fleetward reads committed {revisions['v2']})"
        in result.output
    )
