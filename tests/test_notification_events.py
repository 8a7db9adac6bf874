"""Which runs make which notification events: one per change of state (`EventLog`).

Runs are given as RunReports, the values the engine hands its reporters, so
each case states the report and the events it must make; delivery is tested
against real receivers in test_notifications.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fleetward.applying import ApplyResult
from fleetward.decisions import Decision, Part
from fleetward.errors import Problem
from fleetward.model import Action, Change, ObjectKey, Plan, Revision, StoreMeta
from fleetward.notify.events import REMEMBERED, EventLog, matches
from fleetward.notify.settings import TargetSettings
from fleetward.notify.statuses import CommitStatuses
from fleetward.operations import Operation, OperationState
from fleetward.runs import RunReport

A = Revision("a" * 40, "git")
B = Revision("b" * 40, "git")
NOW = "2025-01-01T00:00:00Z"


def change(ident: str, reason: str = "new", policy: str | None = None) -> Change:
    action = Action.CREATE if reason == "new" else Action.UPDATE
    return Change(
        ObjectKey(f"Asset/{ident}"),
        "Asset",
        action,
        reason,
        "Fleet/north",
        None,
        None,
        policy=policy,
    )


def report(
    revision: Revision,
    state: OperationState = OperationState.SUCCESS,
    written: tuple[Change, ...] = (),
    held: tuple[Part, ...] = (),
    problems: tuple[Problem, ...] = (),
) -> RunReport:
    op = dataclasses.replace(Operation.new("poll", NOW), state=state)
    changes = written + tuple(c for p in held for c in p.changes)
    plan = Plan(None, 1, revision, NOW, changes)
    counts = {
        "create": sum(c.action is Action.CREATE for c in written),
        "update": sum(c.action is Action.UPDATE for c in written),
    }
    applied = ApplyResult(StoreMeta("l", 2, revision.id), counts, op.operation_id, bool(written))
    ok = state is OperationState.SUCCESS
    return RunReport(
        operation=op,
        revision=revision,
        plan=plan if ok else None,
        applied=applied if ok else None,
        store=None,
        problems=problems,
        manifest_errors=len(problems),
        fetch_failed=False,
        phases={},
        duration=0.1,
        decision=Decision((*held,), written, 0) if ok else None,
    )


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_a_failing_revision_is_told_once_and_its_recovery_once() -> None:
    log = EventLog({"url": "repo"})
    bad = Problem("Invalid value", "why", "fix", "manifests/a.yaml:3:5")
    assert kinds(log.finished(report(A, written=(change("1"),)))) == ["applied"]
    failed = log.finished(report(B, OperationState.FAILURE, problems=(bad,)))
    assert kinds(failed) == ["failed"]
    assert failed[0]["errors"][0]["location"] == "manifests/a.yaml:3:5"
    assert "manifests/a.yaml:3:5" in failed[0]["summary"]
    for _ in range(3):  # retried with backoff: no new event
        assert log.finished(report(B, OperationState.FAILURE, problems=(bad,))) == []
    assert kinds(log.finished(report(B))) == ["recovered"]
    assert log.finished(report(B)) == []  # nothing to do: nothing to tell
    assert log.finished(report(B, OperationState.CANCELLED)) == []


def test_held_and_rejected_parts_are_told_once_each_with_the_approve_link() -> None:
    log = EventLog({"url": "repo"}, "https://fleet.example/")
    waiting = Part("prod", (change("2", policy="prod"),), "d1", ("approval",), None, "op-1")
    first = log.finished(report(A, held=(waiting,)))
    assert kinds(first) == ["held"]
    held = first[0]["held"][0]
    assert held["approveUrl"] == "https://fleet.example/v0/operations/op-1/approve"
    assert held["documents"] == ["Fleet/north"] and "Fleet/north" in first[0]["summary"]
    assert first[0]["policies"] == ["prod"]
    assert log.finished(report(A, held=(waiting,))) == []  # still waiting: told already
    rejected = dataclasses.replace(waiting, waiting_for=("rejected",))
    assert kinds(log.finished(report(A, held=(rejected,)))) == ["rejected"]


def test_drift_reverted_names_the_objects_set_back() -> None:
    log = EventLog({"url": "repo"})
    events = log.finished(report(A, written=(change("1", "drift"), change("2"))))
    assert kinds(events) == ["applied", "drift-reverted"]
    assert events[0]["counts"] == {"create": 1, "update": 1}
    assert events[1]["objects"] == ["Asset/1"]


def test_planning_is_told_once_per_revision_with_changes() -> None:
    log = EventLog({"url": "repo"})
    plan = Plan(None, 1, A, NOW, (change("1"),))
    assert kinds(log.planning(plan, None)) == ["planning"]
    assert log.planning(plan, None) == []
    assert log.planning(Plan(None, 1, B, NOW, ()), None) == []  # no changes


def test_selectors_narrow_only_events_about_changes() -> None:
    applied = {"type": "applied", "policies": ["prod"], "kinds": ["Asset"]}
    failed = {"type": "failed"}
    wanted = frozenset({"applied", "failed"})
    assert matches(applied, wanted, ["prod"], [])
    assert not matches(applied, wanted, ["staging"], [])
    assert not matches(applied, wanted, [], ["Workflow"])
    assert matches(failed, wanted, ["staging"], ["Workflow"])  # about the whole revision
    assert not matches(applied, frozenset({"failed"}), [], [])


def test_planning_tells_only_what_a_run_is_about_to_write() -> None:
    log = EventLog({"url": "repo"})
    held = Part("prod", (change("2", policy="prod"),), "d1", ("approval",), None, "op-1")
    wholly_held = Plan(None, 1, A, NOW, held.changes)
    assert log.planning(wholly_held, Decision((held,), (), 0)) == []  # `held` tells it
    partly = Plan(None, 1, A, NOW, (change("1"), *held.changes))
    (planning,) = log.planning(partly, Decision((held,), (change("1"),), 0))
    assert planning["counts"] == {"create": 1} and planning["policies"] == []


def test_a_dry_run_tells_nothing() -> None:
    log = EventLog({"url": "repo"})
    dry = dataclasses.replace(Operation.new("api", NOW), arguments={"dryRun": True})
    log.started(dry)
    assert log.planning(Plan(None, 1, A, NOW, (change("1"),)), None) == []
    done = dataclasses.replace(dry, state=OperationState.SUCCESS)
    assert (
        log.finished(dataclasses.replace(report(A, written=(change("1"),)), operation=done)) == []
    )
    log.started(Operation.new("poll", NOW))  # the next, real run of the same revision
    assert kinds(log.planning(Plan(None, 1, A, NOW, (change("1"),)), None)) == ["planning"]


def event(kind: str, revision: Revision | None = A) -> dict[str, Any]:
    return EventLog({"url": "repo"})._event(kind, revision, kind)


def test_a_commit_status_is_posted_once_per_change_of_what_the_commit_shows() -> None:
    statuses = CommitStatuses()
    planning = event("planning")
    assert statuses.select([planning]) == [planning]
    recovered, applied, drift = event("recovered"), event("applied"), event("drift-reverted")
    # One run, two successes: the commit shows the applied one.
    assert statuses.select([recovered, applied, drift]) == [applied]
    assert statuses.select([event("applied")]) == []  # drift set back later: still success
    assert statuses.select([event("recovered")]) == []
    # Applied with a part held: the commit is pending on that part, named.
    held = event("held")
    assert statuses.select([event("applied"), held]) == [held]
    approved = event("applied")  # the held part, approved and written
    assert statuses.select([approved]) == [approved]
    failed_b = event("failed", B)
    assert statuses.select([failed_b]) == [failed_b]  # failure without a pending first
    assert statuses.select([event("failed", B)]) == []
    assert statuses.select([event("applied", Revision("c" * 40, "dir"))]) == []  # no commit


def test_only_commit_statuses_are_sent_planning_unless_a_target_lists_it() -> None:
    def wanted(**fields: Any) -> frozenset[str]:
        return TargetSettings.model_validate({"name": "t", **fields}).wanted

    hook = {"type": "webhook", "url": "https://hooks.example/x"}
    assert "planning" not in wanted(**hook)
    assert "applied" in wanted(**hook) and "daemon-started" in wanted(**hook)
    assert "planning" not in wanted(type="slack", urlEnv="SLACK_URL")
    assert "planning" in wanted(**hook, events=["planning", "applied"])
    github = {"type": "github", "repository": "acme/fleet", "tokenEnv": "GH_TOKEN"}
    assert "planning" in wanted(**github)


def test_what_was_told_is_bounded_and_taken_back_by_a_new_log() -> None:
    """The outcomes kept are the REMEMBERED latest revisions; a new EventLog given what the
    old one remembered (a restarted daemon) tells nothing already told."""
    log = EventLog({"url": "repo"})
    for n in range(REMEMBERED + 5):
        log.finished(report(Revision(f"{n:040x}", "git"), OperationState.FAILURE))
    kept = log.remembered()
    assert len(kept["outcomes"]) == REMEMBERED
    assert kept["outcomes"][0][0] == f"{5:040x}" and kept["failing"] is True
    waiting = Part("prod", (change("2", policy="prod"),), "d1", ("approval",), None, "op-1")
    assert kinds(log.finished(report(A, held=(waiting,)))) == ["recovered", "held"]
    log.finished(report(B, OperationState.FAILURE))

    again = EventLog({"url": "repo"})
    again.restore(json.loads(json.dumps(log.remembered())))
    assert again.remembered() == log.remembered()
    assert again.finished(report(B, OperationState.FAILURE)) == []
    assert kinds(again.finished(report(B, held=(waiting,)))) == ["recovered"]
    # Revision 0 was forgotten: failing again is news.
    assert kinds(again.finished(report(Revision(f"{0:040x}", "git"), OperationState.FAILURE))) == [
        "failed"
    ]


def test_what_a_commit_shows_is_taken_back_by_new_commit_statuses() -> None:
    statuses = CommitStatuses()
    assert kinds(statuses.select([event("failed")])) == ["failed"]
    again = CommitStatuses()
    again.restore(json.loads(json.dumps(statuses.said())))
    assert again.select([event("failed")]) == []
    assert kinds(again.select([event("recovered")])) == ["recovered"]
