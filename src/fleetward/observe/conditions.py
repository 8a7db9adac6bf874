"""Kubernetes-style conditions of an object a run did not leave fine. Pure.

What `objects/<Kind>/<id>.json` says of an object (Ready, Reconciling, Stalled, each
with a reason and a message): a change the run's decision held (and why: a window,
an approval, a suspension, a guard, an operator's rejection), one that was not
applied or found drift, or an object failure isolation kept at its last applied
version. The status files write them; the web view shows them on an object's page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from fleetward.model import Change, HeldDocument
from fleetward.operations import OperationState
from fleetward.planning import is_drift
from fleetward.runs import RunReport


def object_conditions(report: RunReport) -> Iterable[tuple[Change, list[dict[str, Any]]]]:
    """Each change of the report's plan that needs an object file, with its conditions:
    held by the decision, not applied, or drift set back (an applied change needs none)."""
    plan = report.plan
    if plan is None:
        return
    op = report.operation
    at = op.updated_at
    revision = report.revision.id if report.revision else None
    applied = report.applied is not None and op.state is OperationState.SUCCESS
    decision = report.decision
    held: dict[str, tuple[str, str]] = {}  # address → (reason, message) of a held change
    written: set[str] | None = None
    if decision is not None and op.state is OperationState.SUCCESS:
        written = {c.address for c in decision.due} if applied else set()
        for part in decision.held:
            reason, message = _held_reason(part.policy, part.waiting_for, part.operation_id)
            for change in part.changes:
                held[change.address] = (reason, message)
    for change in plan.changes:
        drift = is_drift(change)
        if written is not None and change.address not in written:
            reason, message = held.get(change.address) or (
                ("DryRun", "the last operation was a dry run; nothing was written")
                if op.arguments.get("dryRun")
                else ("NotInScope", "outside the operation_device_query of the last operation")
            )
            message = f"The change ({change.action.value}: {change.reason}) waits: {message}."
            yield (
                change,
                [
                    _condition("Ready", False, reason, message, at, revision),
                    _condition("Reconciling", True, reason, message, at, revision),
                    _condition("Stalled", False, reason, "", at, revision),
                ],
            )
            continue
        if applied and not drift:
            continue
        if applied:
            conditions = [
                _condition(
                    "Ready",
                    True,
                    "DriftReverted",
                    "The spec had been changed outside "
                    f"fleetward; it was set back to revision {revision}.",
                    at,
                    revision,
                ),
                _condition("Reconciling", False, "Reconciled", "", at, revision),
                _condition("Stalled", False, "Reconciled", "", at, revision),
            ]
        else:
            why = op.message or "the run did not apply its plan"
            conditions = [
                _condition(
                    "Ready",
                    False,
                    "Drifted" if drift else "ApplyFailed",
                    f"The change ({change.action.value}: {change.reason}) was not applied: {why}.",
                    at,
                    revision,
                ),
                _condition("Reconciling", False, "NotApplied", why, at, revision),
                _condition("Stalled", True, _stalled_reason(report), why, at, revision),
            ]
        yield change, conditions


def held_conditions(
    report: RunReport,
) -> Iterable[tuple[HeldDocument, str, list[dict[str, Any]]]]:
    """The objects failure isolation kept at their last applied version: Stalled, until
    their document is fixed (its errors in the message)."""
    if report.plan is None:
        return
    at = report.operation.updated_at
    revision = report.revision.id if report.revision else None
    for held in report.plan.held:
        errors = "; ".join(
            p.error + (f" at {p.location}" if p.location else "") for p in held.errors[:3]
        )
        more = f" (and {len(held.errors) - 3} more)" if len(held.errors) > 3 else ""
        message = (
            f"Held back at its last applied version: {held.address} "
            + (f"at {held.location} " if held.location else "")
            + f"{held.because}"
            + (f": {errors}{more}" if errors else "")
            + "."
        )
        reason = "ManifestErrors" if held.errors else "DependencyHeld"
        conditions = [
            _condition("Ready", False, "HeldBack", message, at, revision),
            _condition("Reconciling", False, "HeldBack", message, at, revision),
            _condition("Stalled", True, reason, message, at, revision),
        ]
        for key in held.kept:
            yield held, key, conditions


def conditions_of(report: RunReport, change: Change) -> list[dict[str, Any]]:
    """The conditions `objects/<kind>/<id>.json` holds for `change`, one of the report's
    plan ([]: the change was applied and needs no file). The web view's object page."""
    if report.plan is None:
        return []
    narrowed = replace(report, plan=replace(report.plan, changes=(change,)))
    for _, conditions in object_conditions(narrowed):
        return conditions
    return []


def _held_reason(
    policy: str | None, waiting_for: tuple[str, ...], operation_id: str | None
) -> tuple[str, str]:
    who = f"SyncPolicy {policy}" if policy else "the daemon"
    carried = f" (operation {operation_id})" if operation_id else ""
    if "suspended" in waiting_for:
        return "Suspended", f"{who} is suspended{carried}"
    if "blocked" in waiting_for:
        return "Blocked", (
            f"{who}'s maxStopFraction guard blocks these changes; commit a fix, or converge "
            "them with arguments.allowMassStop"
        )
    if "rejected" in waiting_for:
        return "Rejected", f"an operator rejected this plan of {who}; a new commit makes a new one"
    if "approval" in waiting_for:
        return "WaitingForApproval", f"{who} needs manual approval{carried}"
    return "WaitingForWindow", f"{who} applies only inside its window{carried}"


def _stalled_reason(report: RunReport) -> str:
    if report.manifest_errors:
        return "ManifestErrors"
    state = report.operation.state
    if state is OperationState.CANCELLED:
        return "Cancelled"
    first = report.problems[0].error if report.problems else ""
    return "Blocked" if "guard" in first else "Failed"


def _condition(
    kind: str, status: bool, reason: str, message: str, at: str, revision: str | None
) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
        "observedRevision": revision,
    }
