"""Plan: desired objects × stored objects → an ordered Plan with guard verdicts. Pure.

Computing a plan never writes anything; the same inputs give the same plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from fleetward.desire import DesiredState
from fleetward.errors import Problem
from fleetward.kinds import KIND_ORDER, OBJECT_KINDS, REGISTRY, KindCaches, PlanContext
from fleetward.model import (
    ABSENT,
    Action,
    Change,
    DesiredObject,
    FieldDiff,
    Guard,
    GuardVerdict,
    HeldDocument,
    ObjectKey,
    ObjectState,
    ObjectView,
    Plan,
    StoredObject,
    StoreSnapshot,
    spec_hash,
)
from fleetward.policy import Governance, policies_of
from fleetward.progress import SILENT, Phase, Watch, counted
from fleetward.timestamps import parse_iso

DEFAULT_MAX_STOP_FRACTION = 0.2
# Below this many stopped or deleted objects the fraction does not block: deleting the
# only Workflow of a small repository is 100 % of one, and no sign of a wrong --path.
DEFAULT_MIN_STOP_COUNT = 10


@dataclass(frozen=True, slots=True)
class PlanOptions:
    allow_empty: bool = False
    allow_mass_stop: bool = False
    max_stop_fraction: float = DEFAULT_MAX_STOP_FRACTION
    min_stop_count: int = DEFAULT_MIN_STOP_COUNT


def plan(
    desired: DesiredState,
    store: StoreSnapshot,
    now: str,
    options: PlanOptions = PlanOptions(),
    watch: Watch = SILENT,
    held: tuple[HeldDocument, ...] = (),
) -> Plan:
    """The plan from `store` to `desired`.

    `held` (failure isolation) names documents kept at their last applied version:
    their stored objects get no change at all, and count as present for the guards.
    """
    stored = store.objects
    changes: dict[ObjectKey, Change] = {}
    held_owners = frozenset(h.address for h in held)
    kept: dict[str, list[ObjectKey]] = {owner: [] for owner in held_owners}
    # Counted: every desired object and every stored one (the checks that follow are
    # not, so the bar stands full while they run).
    watch.start(Phase.PLANNING, len(desired.objects) + len(stored))
    for key, want in counted(desired.objects.items(), watch):
        have = stored.get(key)
        if have is None:
            changes[key] = _create(want, now)
        elif held_owners and have.owner in held_owners:
            continue  # isolation holds the document that owns it: it stays as applied
        elif not _untouched(want, have):
            change = _compare(want, have, now)
            if change.action is not Action.NOOP:
                changes[key] = change
    for key, have in counted(stored.items(), watch):
        if held_owners and have.owner in held_owners:
            kept[have.owner].append(key)
        elif key not in desired.objects and have.state is ObjectState.ACTIVE:
            removal = _remove(have, desired.objects, stored, desired.caches)
            if removal is not None:
                changes[key] = removal
    reports: dict[str, Any] = {}
    context = PlanContext(
        desired.documents,
        desired.objects,
        stored,
        changes,
        **({"locate": desired.locate} if desired.locate is not None else {}),
        reports=reports,
        caches=desired.caches,
    )
    errors: list[Problem] = []
    for plugin in REGISTRY.values():
        errors.extend(plugin.check_plan(context))
    governance = Governance(
        policies_of(desired.documents), desired.documents, store.meta.owner_labels
    )
    governed = _govern(changes.values(), governance) if governance else changes.values()
    visible = sorted(
        governed,
        key=lambda c: (KIND_ORDER.get(c.kind, len(KIND_ORDER)), c.kind, c.address),
    )
    return Plan(
        lineage=store.meta.lineage,
        serial=store.meta.serial,
        revision=desired.revision,
        created_at=now,
        changes=tuple(visible),
        guards=tuple(_guards(desired, stored, visible, options, governance, _active(kept, stored))),
        errors=tuple(errors),
        desired_counts=dict(Counter(o.kind for o in desired.objects.values())),
        reports=reports,
        policies=_policies(visible, governance, now),
        held=tuple(replace(h, kept=tuple(sorted(kept[h.address]))) for h in held),
    )


def _active(kept: Mapping[str, list[ObjectKey]], stored: Mapping[ObjectKey, StoredObject]) -> int:
    """How many active objects the held documents keep."""
    return sum(1 for keys in kept.values() for k in keys if stored[k].state is ObjectState.ACTIVE)


def _govern(changes: Iterable[Change], governance: Governance) -> list[Change]:
    out = []
    for change in changes:
        policy = governance.of_owner(change.owner)
        out.append(replace(change, policy=policy.name) if policy is not None else change)
    return out


def _policies(changes: list[Change], governance: Governance, now: str) -> dict[str, dict[str, Any]]:
    counts = Counter(c.policy for c in changes if c.policy is not None)
    if not counts:
        return {}
    try:
        moment: datetime | None = parse_iso(now)
    except ValueError:
        moment = None  # a review plan (--base) has no time: windows are not shown
    return {
        name: {**governance.by_name[name].describe(moment), "changes": counts[name]}
        for name in sorted(counts)
    }


def _create(want: DesiredObject, now: str) -> Change:
    object_kind = OBJECT_KINDS.get(want.kind)
    derive = object_kind.derive_status if object_kind else None
    status = derive(want.spec, None, True) if derive else None
    if want.initial_status:
        # What the manifest says a new object starts as (a task's status); people own it after.
        status = {**(status or {}), **want.initial_status}
    if want.derived_status:
        status = {**(status or {}), **want.derived_status, "lastRunTime": now}
    return Change(
        address=want.key,
        kind=want.kind,
        action=Action.CREATE,
        reason=want.note or "new in manifests",
        owner=want.owner,
        before=None,
        after=ObjectView(ObjectState.ACTIVE, want.owner, want.spec, want.spec_hash, status),
    )


def _untouched(want: DesiredObject, have: StoredObject) -> bool:
    """Nothing to do, decided without building views: most objects of a warm re-plan."""
    return (
        want.spec_hash == have.spec_hash
        and have.state is ObjectState.ACTIVE
        and have.owner == want.owner
        and want.kind not in _DERIVING
        and not want.derived_status
        and not have.drifted
    )


# Kinds whose status is derived on apply: their no-op check needs the full comparison.
_DERIVING = frozenset(name for name, k in OBJECT_KINDS.items() if k.derive_status is not None)


DRIFT = "drift"  # the reason `_compare` gives a change that reverts drift


def is_drift(change: Change) -> bool:
    """Whether a change reverts drift (one of its reasons, as `_compare` joins them)."""
    return DRIFT in change.reason.split(", ")


def _compare(want: DesiredObject, have: StoredObject, now: str) -> Change:
    reasons = []
    if have.state is not ObjectState.ACTIVE:
        reasons.append(f"restarted (was {have.state.value})")
    if have.owner != want.owner:
        reasons.append(f"moved from {have.owner}" if have.owner else "adopted")
    object_kind = OBJECT_KINDS.get(want.kind)
    spec_changed = want.spec_hash != have.spec_hash
    if spec_changed:
        reasons.append("spec changed")
        if object_kind is not None and object_kind.update_reasons is not None:
            reasons.extend(object_kind.update_reasons(have.spec, want.spec))
    if have.drifted:
        reasons.append(DRIFT)
    derive = object_kind.derive_status if object_kind else None
    # A drift revert restores the applied spec: derived status (a version) does not move for it.
    status = derive(want.spec, have.status, spec_changed) if derive else None
    if want.derived_status:
        # Desire-time status (a rule's progress); `lastRunTime` moves only when it does.
        moved = any(have.status.get(k) != v for k, v in want.derived_status.items())
        ran = now if moved else have.status.get("lastRunTime")
        status = {**(status or {}), **want.derived_status}
        if ran is not None:
            status["lastRunTime"] = ran
    if (
        status is not None
        and not reasons
        and any(have.status.get(k) != v for k, v in status.items())
    ):
        reasons.append("status derived")
    before = ObjectView(have.state, have.owner, have.spec, status=have.status if derive else None)
    after = ObjectView(ObjectState.ACTIVE, want.owner, want.spec, want.spec_hash, status)
    if not reasons:
        return Change(want.key, want.kind, Action.NOOP, "", want.owner, before, after)
    return Change(
        address=want.key,
        kind=want.kind,
        action=Action.UPDATE,
        reason=f"{want.note}: {', '.join(reasons)}" if want.note else ", ".join(reasons),
        owner=want.owner,
        before=before,
        after=after,
        diff=tuple(view_diff(before, after)),
    )


def _remove(
    have: StoredObject,
    desired: Mapping[ObjectKey, DesiredObject],
    stored: Mapping[ObjectKey, StoredObject],
    caches: KindCaches,
) -> Change | None:
    object_kind = OBJECT_KINDS.get(have.kind)
    if object_kind is None:
        return None  # a kind this version does not manage: leave it alone
    # The kind whose document owns the object may decide (a rule's generated assets).
    owner_plugin = REGISTRY.get(have.owner.split("/", 1)[0])
    custom = owner_plugin.removal(have, desired, stored, caches) if owner_plugin else None
    on_removal, removal_reason = object_kind.on_removal, object_kind.removal_reason
    if custom is not None:
        if custom.action is None:
            return None  # the owner keeps it (a stopped rule's assets, keepOldAssets)
        on_removal, removal_reason = custom.action, custom.reason
    marks = object_kind.removal_status
    before = ObjectView(have.state, have.owner, have.spec, status=have.status if marks else None)
    if on_removal is Action.STOP:
        # Keep the applied hash: stopping must not launder a drifted spec into truth.
        after: ObjectView | None = ObjectView(
            ObjectState.STOPPED, have.owner, have.spec, have.spec_hash, marks
        )
        diff: tuple[FieldDiff, ...] = (
            FieldDiff("state", have.state.value, ObjectState.STOPPED.value),
            *(
                FieldDiff(f"status.{k}", have.status.get(k, ABSENT), v)
                for k, v in sorted((marks or {}).items())
                if have.status.get(k, ABSENT) != v
            ),
        )
    else:
        after, diff = None, ()
    return Change(
        address=have.key,
        kind=have.kind,
        action=on_removal,
        reason=removal_reason,
        owner=have.owner,
        before=before,
        after=after,
        diff=diff,
    )


def view_diff(before: ObjectView, after: ObjectView) -> Iterable[FieldDiff]:
    if before.state is not after.state:
        yield FieldDiff("state", before.state.value, after.state.value)
    if before.owner != after.owner:
        yield FieldDiff("owner", before.owner, after.owner)
    yield from value_diff("spec", before.spec, after.spec)
    if after.status is not None:
        previous = before.status or {}
        for key in sorted(after.status):
            yield from value_diff(f"status.{key}", previous.get(key, ABSENT), after.status[key])


def value_diff(path: str, before: Any, after: Any) -> Iterable[FieldDiff]:
    """Field-level differences: mappings and lists of mappings (workflow steps) are
    walked item by item; scalars and lists of scalars are compared whole."""
    if before == after and type(before) is type(after):
        return
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            yield from value_diff(f"{path}.{key}", before.get(key, ABSENT), after.get(key, ABSENT))
        return
    if _records(before) and _records(after):
        for i in range(max(len(before), len(after))):
            yield from value_diff(
                f"{path}[{i}]",
                before[i] if i < len(before) else ABSENT,
                after[i] if i < len(after) else ABSENT,
            )
        return
    yield FieldDiff(path, before, after)


def _records(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(item, Mapping) for item in value)


def _guards(
    desired: DesiredState,
    stored: Mapping[ObjectKey, StoredObject],
    changes: list[Change],
    options: PlanOptions,
    governance: Governance,
    kept_active: int = 0,
) -> Iterable[Guard]:
    active: Counter[str] = Counter()  # ungoverned active objects per kind
    governed: Counter[tuple[str, str]] = Counter()  # active objects per (policy, kind)
    if governance:
        # Count per owner first: ~100 owners to resolve, not 100,000 objects.
        per_owner = Counter(
            (o.owner, o.kind) for o in stored.values() if o.state is ObjectState.ACTIVE
        )
        for (owner, kind), n in per_owner.items():
            policy = governance.of_owner(owner)
            if policy is None:
                active[kind] += n
            else:
                governed[policy.name, kind] += n
    else:
        active.update(o.kind for o in stored.values() if o.state is ObjectState.ACTIVE)
    total_active = sum(active.values(), 0) + sum(governed.values(), 0)
    # Held documents are present, at their applied version: every file broken at once
    # (a wrong path would do that) stops nothing, and so blocks nothing either.
    if not desired.objects and total_active and not kept_active:
        verdict = GuardVerdict.OVERRIDDEN if options.allow_empty else GuardVerdict.BLOCKED
        yield Guard(
            "empty-desired-state",
            verdict,
            f"The revision declares no objects, but the store holds {total_active} active "
            "object(s); applying would stop or delete all of them. A wrong --path or ref looks "
            "exactly like this.",
            "--allow-empty",
        )
    removing = [c for c in changes if c.action in (Action.STOP, Action.DELETE)]
    yield from _policy_guards(removing, governed, governance, options)
    removed = Counter(c.kind for c in removing if c.policy is None)
    for kind in sorted(removed):
        fraction = removed[kind] / active[kind] if active[kind] else 1.0
        if removed[kind] < options.min_stop_count or fraction <= options.max_stop_fraction:
            continue
        verdict = GuardVerdict.OVERRIDDEN if options.allow_mass_stop else GuardVerdict.BLOCKED
        elsewhere = {p: n for (p, k), n in governed.items() if k == kind}
        population = "that no SyncPolicy governs" if elsewhere else "in the store"
        yield Guard(
            "mass-stop",
            verdict,
            f"The plan stops or deletes {removed[kind]} of the {active[kind]} active {kind} "
            f"object(s) {population} ({fraction:.0%}), more than the "
            f"{options.max_stop_fraction:.0%} allowed{_floor(options.min_stop_count)}."
            + _governed_elsewhere(kind, elsewhere),
            "--allow-mass-stop",
        )


def _governed_elsewhere(kind: str, elsewhere: Mapping[str, int]) -> str:
    """The objects of `kind` the default guard left out: its policies' guards count them."""
    if not elsewhere:
        return ""
    names = ", ".join(sorted(elsewhere))
    if len(elsewhere) == 1:
        whose = f"SyncPolicy {names} and counted by its guard"
    else:
        whose = f"SyncPolicies {names} and counted by their guards"
    return f" {sum(elsewhere.values())} more active {kind} object(s) are governed by {whose}."


def _floor(min_stop_count: int) -> str:
    """The floor below which the fraction does not block, when there is one to speak of."""
    if min_stop_count <= 1:
        return ""
    return f" once {min_stop_count} or more are stopped or deleted"


def _policy_guards(
    removing: list[Change],
    governed: Counter[tuple[str, str]],
    governance: Governance,
    options: PlanOptions,
) -> Iterable[Guard]:
    """A policy's maxStopFraction, over the active objects it governs (of every kind)."""
    removed = Counter(c.policy for c in removing if c.policy is not None)
    for name in sorted(removed):
        spec = governance.by_name[name].spec
        limit = spec.maxStopFraction
        floor = options.min_stop_count if spec.minStopCount is None else spec.minStopCount
        kinds = {k: n for (p, k), n in sorted(governed.items()) if p == name}
        total = sum(kinds.values(), 0)
        fraction = removed[name] / total if total else 1.0
        if removed[name] < floor or fraction <= limit:
            continue
        verdict = GuardVerdict.OVERRIDDEN if options.allow_mass_stop else GuardVerdict.BLOCKED
        counted = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "none"
        yield Guard(
            "mass-stop",
            verdict,
            f"The plan stops or deletes {removed[name]} of the {total} active object(s) "
            f"governed by SyncPolicy {name} ({fraction:.0%}; counted: {counted}), more than "
            f"its maxStopFraction of {limit:.0%}{_floor(floor)}.",
            "--allow-mass-stop",
            policy=name,
        )


__all__ = [
    "DEFAULT_MIN_STOP_COUNT",
    "PlanOptions",
    "is_drift",
    "plan",
    "spec_hash",
    "value_diff",
    "view_diff",
]
