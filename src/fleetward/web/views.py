"""Pieces several pages share: revisions, plan lines, held parts, problems, conditions.

Each is a value a template renders, derived from the daemon's memory; those derived
from a frozen report or plan are computed once per owner (`Memo`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleetward.decisions import Decision, Part, waiting_message
from fleetward.errors import Problem
from fleetward.model import Change, Plan, StoredObject
from fleetward.observe.conditions import conditions_of
from fleetward.rendering import Line, render_plan
from fleetward.runs import RunReport
from fleetward.web.commits import Commit, CommitReader
from fleetward.web.memo import Memo

PLAN_LINES = 500  # object lines of an operation's plan; the rest is summarised
HELD_LINES = 20  # object lines per held part on the overview
MAX_ERRORS = 100


@dataclass(frozen=True, slots=True)
class RevisionView:
    sha: str
    short: str
    commit: Commit | None


def revision_view(commits: CommitReader, revision: str | None) -> RevisionView | None:
    if not revision:
        return None
    short = revision[:7] if not revision.startswith("sha256:") else revision[:19]
    return RevisionView(revision, short, commits.get(revision))


def plan_lines(memos: Memo, plan: Plan, max_lines: int = PLAN_LINES) -> list[Line]:
    """The plan as `fleetward plan` prints it: (style, text) lines; styles become CSS classes."""
    return memos.get(plan, f"lines:{max_lines}", lambda: render_plan(plan, max_lines))


def part_lines(plan: Plan, part: Part, max_lines: int = HELD_LINES) -> list[Line]:
    """What a held part would change, rendered like a plan of those changes only."""
    policies = {k: v for k, v in plan.policies.items() if k == part.policy}
    narrowed = replace(
        plan, changes=part.changes, guards=(), errors=(), reports={}, policies=policies
    )
    return render_plan(narrowed, max_lines)


@dataclass(frozen=True, slots=True)
class HeldView:
    policy: str | None
    waiting_for: tuple[str, ...]
    why: str
    changes: int
    operation_id: str | None
    lines: list[Line]
    owners: list[tuple[str, int]]  # owner document → changes of it held


def held_views(
    memos: Memo, report: RunReport | None, max_lines: int = HELD_LINES
) -> list[HeldView]:
    if report is None or report.decision is None or report.plan is None:
        return []
    plan, decision = report.plan, report.decision
    return memos.get(
        decision,
        f"held:{max_lines}",
        lambda: [held_view(plan, part, max_lines) for part in decision.held],
    )


def held_view(plan: Plan, part: Part, max_lines: int) -> HeldView:
    owners: dict[str, int] = {}
    for change in part.changes:
        owners[change.owner] = owners.get(change.owner, 0) + 1
    return HeldView(
        part.policy,
        part.waiting_for,
        waiting_message(part),
        len(part.changes),
        part.operation_id,
        part_lines(plan, part, max_lines),
        sorted(owners.items()),
    )


def problem_views(problems: Sequence[Problem | Mapping[str, Any]]) -> list[Problem]:
    return [
        p if isinstance(p, Problem) else Problem.from_dict(p) for p in list(problems)[:MAX_ERRORS]
    ]


# -- an object's conditions ----------------------------------------------------------


def object_conditions(
    memos: Memo, planned: RunReport | None, obj: StoredObject, read: RunReport | None
) -> list[dict[str, Any]]:
    """Ready / Reconciling / Stalled, as the status files would say them for this object."""
    found = _conditions_in(memos, planned, obj.key) if planned is not None else []
    if found:
        return found
    # Reconciled since the store last wrote it: a poll that changed nothing (its own time
    # moves every poll) is no transition.
    at = obj.updated_at
    revision = read.revision.id if read is not None and read.revision else obj.applied_revision
    ok = {"lastTransitionTime": at, "observedRevision": revision}
    message = f"The store holds the spec of revision {obj.applied_revision[:12]}."
    return [
        {"type": "Ready", "status": "True", "reason": "Reconciled", "message": message, **ok},
        {"type": "Reconciling", "status": "False", "reason": "Reconciled", "message": "", **ok},
        {"type": "Stalled", "status": "False", "reason": "Reconciled", "message": "", **ok},
    ]


def _conditions_in(memos: Memo, report: RunReport, address: str) -> list[dict[str, Any]]:
    """The object's conditions after `report`, from the report narrowed to its one change
    (the status files' rules, without walking the whole plan per request)."""
    changes = changes_of(memos, report)
    entry = changes.get(address)
    if entry is None or report.plan is None:
        return []
    change, part, due = entry
    decision = report.decision
    if decision is not None:
        decision = Decision(
            parts=(replace(part, changes=(change,)),) if part is not None else (),
            due=(change,) if due else (),
            out_of_scope=decision.out_of_scope,
        )
    narrowed = replace(report, plan=replace(report.plan, changes=(change,)), decision=decision)
    return conditions_of(narrowed, change)


def changes_of(memos: Memo, report: RunReport) -> dict[str, tuple[Change, Part | None, bool]]:
    """Each change of the report's plan by address: the held part holding it (None: not
    held), and whether the run's decision had it due; built once per plan."""

    def build() -> dict[str, tuple[Change, Part | None, bool]]:
        held: dict[str, Part] = {}
        decision = report.decision
        for part in decision.held if decision is not None else ():
            for change in part.changes:
                held[change.address] = part
        due = {c.address for c in decision.due} if decision is not None else set()
        plan = report.plan
        changes = plan.changes if plan is not None else ()
        return {c.address: (c, held.get(c.address), c.address in due) for c in changes}

    return memos.get(report, "changes", build)
