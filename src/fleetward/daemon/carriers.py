"""Which operation carries each held part after a run: end it, keep it, or start one. Pure.

A part held by a window or an approval is carried by an Operation of its own,
SCHEDULED (100), recorded with the part's digest: approval binds to exactly
those changes. A part a rollback held carries the rollback's arguments, so
releasing it runs that rollback. When a later run writes the part unchanged, that operation ends
SUCCESS; when the part changes (a newer revision), it ends CANCELLED with the
reason and a new operation carries the new part. `settle` records the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fleetward.decisions import Decision, Part, waiting_message
from fleetward.model import Change, Plan, action_counts
from fleetward.operations import Operation, OperationState, Transition
from fleetward.policy import changes_digest
from fleetward.rollback import rollback_arguments
from fleetward.timestamps import to_iso

S = OperationState
# The states a carried part passes through when a run writes it.
_CARRY = (S.RESOLVING, S.RESOLVED, S.DISPATCHING, S.DISPATCHED, S.PROCESSING, S.COMPLETED)

NewOperation = Callable[[str, str], Operation]  # (trigger, now) → a CREATED operation


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a run's end changes about the operations carrying held parts."""

    recorded: tuple[Operation, ...]  # carriers ended, refreshed or started, in order
    # Policies with a part in the plan: the rejections of the others are over (they
    # have nothing left to change).
    planned: frozenset[str]
    # Policies whose rejection is answered: a person approved a later plan, now applied.
    lifted: frozenset[str]


def settlement(
    run: Operation,
    plan: Plan,
    decision: Decision,
    live: Mapping[str, Operation],
    *,
    written: bool,
    serial: int | None,
    now: str,
    new_operation: NewOperation = Operation.new,
) -> Settlement:
    """End, keep or create the operations carrying held parts, after `run` wrote the
    decision's due changes (`written`, at `serial`) or wrote nothing."""
    done = {c.address for c in decision.due} if written else set()
    recorded: list[Operation] = []
    seen: set[str] = set()
    lifted: set[str] = set()
    for part in decision.parts:
        if part.policy is None:
            continue
        seen.add(part.policy)
        carrier = live.get(part.policy)
        if carrier is not None and carrier.operation_id == run.operation_id:
            carrier = None  # the run's own operation ends with the run
        remaining = tuple(c for c in part.changes if c.address not in done)
        if not remaining:
            if carrier is None:
                continue
            if carrier.plan_digest != part.digest:
                recorded.append(
                    carrier.move(
                        S.CANCELLED,
                        now,
                        f"superseded: revision {plan.revision.short} changed the "
                        f"policy's changes, and operation {run.operation_id} applied them",
                    )
                )
                continue
            if carrier.approval is not None and carrier.approval.get("approved_by"):
                # A person approved a later plan and it is applied: the policy's
                # earlier rejection has been answered.
                lifted.add(part.policy)
            ended = carrier.through(_CARRY, now).move(
                S.SUCCESS, now, f"applied by operation {run.operation_id} at serial {serial}"
            )
            recorded.append(replace(ended, serial=serial, waiting_for=()))
            continue
        digest = changes_digest(remaining) if len(remaining) != len(part.changes) else part.digest
        if carrier is not None and carrier.plan_digest == digest:
            updated = refresh(carrier, part, now)
            if updated is not carrier:
                recorded.append(updated)
            continue
        if carrier is not None and carrier.plan_digest == part.digest:
            recorded.append(_partly_applied(carrier, part, remaining, digest, run, serial, now))
            continue
        new = (
            held_operation(
                part, remaining, digest, plan, now, new_operation, rollback_arguments(run)
            )
            if wants_carrier(part)
            else None
        )
        if carrier is not None:
            tail = f"; operation {new.operation_id} carries the new plan" if new else ""
            recorded.append(
                carrier.move(
                    S.CANCELLED,
                    now,
                    f"superseded by revision {plan.revision.short}: the policy's changes "
                    f"differ from the ones this operation carried{tail}",
                )
            )
        if new is not None:
            recorded.append(new)
    for name, carrier in live.items():
        if name in seen or carrier.operation_id == run.operation_id:
            continue
        recorded.append(
            carrier.move(
                S.CANCELLED,
                now,
                f"superseded: at revision {plan.revision.short} the store already matches "
                f"what policy {name} governs (a commit reverted the changes, or a "
                "fleetward apply wrote them)",
            )
        )
    planned = frozenset(p.policy for p in decision.parts if p.policy is not None)
    return Settlement(tuple(recorded), planned, frozenset(lifted))


def wants_carrier(part: Part) -> bool:
    """Whether a held part gets an operation: something a person or the clock can
    release (a window, an approval); a blocked part only if an approval (of a manual
    policy) may override its guard; a rejected part never."""
    waits = set(part.waiting_for)
    return (
        bool({"window", "approval"} & waits)
        and "rejected" not in waits
        and ("blocked" not in waits or "approval" in waits)
    )


def _partly_applied(
    carrier: Operation,
    part: Part,
    remaining: tuple[Change, ...],
    digest: str,
    run: Operation,
    serial: int | None,
    now: str,
) -> Operation:
    """A query-limited run wrote some of exactly the changes `carrier` carries: the
    rest stays with it, approval included."""
    message = (
        f"partly applied by operation {run.operation_id} at serial {serial}; "
        f"{len(remaining)} change(s) remain"
    )
    return replace(
        refresh(carrier, part, now),
        plan_digest=digest,
        plan_summary=action_counts(remaining),
        updated_at=now,
        transitions=(*carrier.transitions, Transition(S.SCHEDULED, now, message)),
        message=message,
    )


def held_operation(
    part: Part,
    changes: tuple[Change, ...],
    digest: str,
    plan: Plan,
    now: str,
    new_operation: NewOperation = Operation.new,
    arguments: Mapping[str, Any] | None = None,
) -> Operation:
    """A new SCHEDULED operation carrying `changes` (the part, or what is left of it).

    `arguments`: a held rollback's (`rollback_arguments`), so that releasing the
    part runs that rollback, pinned to its revision, not a run of the head."""
    op = replace(
        new_operation("policy", now),
        arguments=dict(arguments or {}),
        policy=part.policy,
        schedule_type="WINDOW" if part.window is not None else "IMMEDIATE",
        plan_digest=digest,
        plan_summary=action_counts(changes),
        revision=plan.revision.id,
        ref=plan.revision.ref,
        approval=(
            {"required": True, "approved_by": None, "approved_at": None}
            if "approval" in part.waiting_for
            else None
        ),
    )
    op = op.through((S.RESOLVING, S.RESOLVED), now)
    return refresh(op.move(S.SCHEDULED, now, waiting_message(part)), part, now)


def refresh(op: Operation, part: Part, now: str) -> Operation:
    """The held operation with what it now waits for and its window (itself if unchanged)."""
    waiting = tuple(part.waiting_for)
    if op.approval is not None and op.approval.get("approved_by"):
        waiting = tuple(w for w in waiting if w != "approval")
    window = (
        {"opens_at": to_iso(part.window.opens_at), "closes_at": to_iso(part.window.closes_at)}
        if part.window is not None
        else None
    )
    if waiting == op.waiting_for and window == (dict(op.window) if op.window else None):
        return op
    return replace(
        op, waiting_for=waiting, window=window, updated_at=now, message=waiting_message(part)
    )


__all__ = ["Settlement", "held_operation", "refresh", "settlement", "wants_carrier"]
