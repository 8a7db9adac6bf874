"""What a run may write now and what waits, and why. Pure over frozen values.

Every run plans the whole revision. Each change is governed by one SyncPolicy
(or by the daemon's default: at once, no approval; see `fleetward.policy`). The
changes of one policy form a *part*; a part is written only when nothing holds
it:

- `suspended`: the policy says `suspend: true`, or `fleetward suspend` holds
  the whole daemon;
- `window`: its policy's WINDOW is closed (or would close before the write);
- `approval`: its policy wants manual approval, and the operation carrying
  exactly these changes has not been approved;
- `rejected`: an operator ended the operation that carried exactly these
  changes (PUT .../{id}/ CANCELLED, FAILED or TIMEOUT). The same plan is not
  offered again. Until a person approves a later plan of that policy (or the
  policy has nothing left to change), each new plan of it waits for approval,
  even under `approval: auto`: a rejected change must never slip through with
  an unrelated commit;
- `blocked`: its policy's maxStopFraction guard blocks it (an approval of
  exactly these changes overrides it for a manual policy).

Which operation carries a held part is `daemon.carriers`' concern; this module
only says what holds each part, given the clock and what the log and rejections say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from fleetward.model import Change, Plan
from fleetward.operations import Operation
from fleetward.policy import (
    DeviceQuery,
    Policy,
    WindowState,
    changes_digest,
    window_json,
    window_state,
)
from fleetward.timestamps import to_iso


@dataclass(frozen=True, slots=True)
class Part:
    """The changes of one plan governed by one policy (None: the daemon's default)."""

    policy: str | None
    changes: tuple[Change, ...]
    digest: str
    waiting_for: tuple[str, ...]  # empty: may be written now
    window: WindowState | None = None
    operation_id: str | None = None  # the operation carrying it, once one does


@dataclass(frozen=True, slots=True)
class Decision:
    parts: tuple[Part, ...]
    due: tuple[Change, ...]  # in this run's scope and held by nothing
    out_of_scope: int  # changes the run's operation_device_query leaves alone

    @property
    def held(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.waiting_for)

    def held_count(self) -> int:
        return sum(len(p.changes) for p in self.held)


def decide(
    plan: Plan,
    policies: Mapping[str, Policy],
    now: datetime,
    *,
    query: DeviceQuery | None = None,
    suspended: bool = False,
    live: Mapping[str, Operation] | None = None,
    rejected: Mapping[str, str] | None = MappingProxyType({}),
    blocked: frozenset[str] = frozenset(),
) -> Decision:
    """Split a plan into parts and say which may be written now.

    `live` maps a policy name to the operation carrying its held part;
    `rejected` maps a policy to the digest of its plan an operator rejected (None:
    unknown, every policy's part is held); `blocked` the
    policies whose own guard (maxStopFraction) blocks their part.
    """
    live = live or {}
    known_rejections = {} if rejected is None else rejected
    grouped: dict[str | None, list[Change]] = {}
    for change in plan.changes:
        grouped.setdefault(change.policy, []).append(change)
    parts: list[Part] = []
    due: list[Change] = []
    out_of_scope = 0
    for name in sorted(grouped, key=lambda n: (n is not None, n or "")):
        changes = tuple(grouped[name])
        # Only a policy's part can be approved or rejected: the default part needs no digest.
        digest = changes_digest(changes) if name is not None else ""
        policy = policies.get(name) if name is not None else None
        waiting: list[str] = []
        window: WindowState | None = None
        if suspended or (policy is not None and policy.spec.suspend):
            waiting.append("suspended")
        if policy is not None and policy.windowed:
            window = window_state(policy.spec.schedule, now)
            if not window.open:
                waiting.append("window")
        carrier = live.get(name) if name is not None else None
        approved = approves(carrier, digest)
        # None: which plans were rejected is unknown, so every policy's part is held.
        is_rejected = name is not None and (
            rejected is None or known_rejections.get(name) == digest
        )
        after_rejection = name is not None and name in known_rejections
        if is_rejected:
            waiting.append("rejected")
        elif (
            name is not None
            and not approved
            and ((policy is not None and policy.manual) or after_rejection)
        ):
            waiting.append("approval")
        if name is not None and name in blocked and not approved:
            waiting.append("blocked")
        carried_by = carrier.operation_id if carrier is not None else None
        parts.append(Part(name, changes, digest, tuple(waiting), window, carried_by))
        if waiting:
            continue
        for change in changes:
            if query is None or in_scope(query, change):
                due.append(change)
            else:
                out_of_scope += 1
    return Decision(tuple(parts), tuple(due), out_of_scope)


def approves(op: Operation | None, digest: str) -> bool:
    """Whether `op` carries an approval of exactly the changes with `digest`."""
    return (
        op is not None
        and op.plan_digest == digest
        and op.approval is not None
        and bool(op.approval.get("approved_by"))
    )


def in_scope(query: DeviceQuery, change: Change) -> bool:
    """Whether an operation_device_query selects the object a change touches."""
    view = change.after if change.after is not None else change.before
    spec: Mapping[str, Any] = view.spec if view is not None else {}
    raw = spec.get("labels")
    labels = (
        {k: v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, Mapping) else {}
    )
    ident = str(change.address).split("/", 1)[1]
    return query.matches(change.kind, ident, labels, spec)


def hold_overruns(
    decision: Decision, policies: Mapping[str, Policy], until: datetime
) -> tuple[Decision, list[str]]:
    """Hold back the windowed parts whose window will have closed by `until` (now plus
    the expected length of the write): such a write would overrun its window."""
    overrun: list[str] = []
    parts: list[Part] = []
    for part in decision.parts:
        policy = policies.get(part.policy) if part.policy is not None else None
        if part.waiting_for or policy is None or not policy.windowed:
            parts.append(part)
            continue
        later = window_state(policy.spec.schedule, until)
        now_closes = part.window.closes_at if part.window is not None else None
        # Still inside a window at `until`, and it began before the current one closed
        # (the same window, or one overlapping it): the write never leaves a window.
        if later.open and (
            now_closes is None or (later.opens_at is not None and later.opens_at <= now_closes)
        ):
            parts.append(part)
            continue
        overrun.append(part.policy or "")
        parts.append(replace(part, waiting_for=("window",), window=later))
    if not overrun:
        return decision, []
    dropped = {c.address for p in parts if p.policy in overrun for c in p.changes}
    due = tuple(c for c in decision.due if c.address not in dropped)
    return Decision(tuple(parts), due, decision.out_of_scope), overrun


def with_carriers(decision: Decision, live: Mapping[str, Operation]) -> Decision:
    """The decision with each held part's carrying operation as it is now recorded."""
    parts = tuple(
        replace(p, operation_id=live[p.policy].operation_id)
        if p.policy is not None and p.policy in live
        else replace(p, operation_id=None)
        for p in decision.parts
    )
    return replace(decision, parts=parts)


def waiting_message(part: Part) -> str:
    """What a held part waits for, in one sentence (the carrying operation's message)."""
    reasons = []
    if "suspended" in part.waiting_for:
        reasons.append("its policy is suspended")
    if "window" in part.waiting_for and part.window is not None:
        opens = to_iso(part.window.opens_at)
        reasons.append(
            f"waiting for its window opening at {opens}"
            if opens
            else "its window never opens again"
        )
    if "approval" in part.waiting_for:
        reasons.append("waiting for approval")
    if "blocked" in part.waiting_for:
        reasons.append("blocked by its policy's maxStopFraction guard")
    if "rejected" in part.waiting_for:
        reasons.append("an operator rejected this plan")
    return "; ".join(reasons) or "ready to apply"


def held_summary(decision: Decision) -> list[dict[str, Any]]:
    """The held parts as status files and logs show them."""
    out = []
    for part in decision.held:
        out.append(
            {
                "policy": part.policy,
                "waitingFor": list(part.waiting_for),
                "changes": len(part.changes),
                "operationId": part.operation_id,
                **({"window": window_json(part.window)} if part.window is not None else {}),
            }
        )
    return out


def describe_held(decision: Decision) -> str:
    bits = []
    for part in decision.held:
        who = f"policy {part.policy}" if part.policy else "default"
        bits.append(f"{len(part.changes)} held ({who}: {', '.join(part.waiting_for)})")
    return "; ".join(bits)


__all__ = [
    "Decision",
    "Part",
    "approves",
    "decide",
    "describe_held",
    "held_summary",
    "hold_overruns",
    "in_scope",
    "waiting_message",
    "with_carriers",
]
