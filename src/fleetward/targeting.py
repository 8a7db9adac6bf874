"""Targeted plans (`plan`/`apply --target`): a whole plan cut down to some objects. Pure.

A target is `KIND/NAME-GLOB` (an exact address is a glob without wildcards).
It selects the changes whose address matches it (`Asset/TRK-*`) or whose owner
document does (`Fleet/eu-*`: every object that fleet declares, stops of the
assets it dropped included). Matching is case-sensitive on the name, like
addresses; the kind may be written in any case.

What a selected object needs comes along, by one rule: every object the plan
*creates* whose id is named by a string anywhere in the spec of a selected
object — a task's `{"xid": "VAN-3001"}` asset, its field, task type and
assignees, a stream's metadata's stream — and so on, transitively. Only creates
are pulled in: an object that exists already is there to be referenced. The
rule reads no kind's schema, so it can include an unrelated new object whose
id equals some string of a selected spec; converging one object more than
asked is the safe side of that trade.

Guards and plan-wide errors stay those of the whole plan: a revision that
fails its checks is not applied in parts, and a mass stop is judged on all of it.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleetward.errors import UsageError
from fleetward.kinds import OBJECT_KINDS, REGISTRY
from fleetward.kinds.problems import did_you_mean
from fleetward.kinds.tasks import TASK, targeted_report
from fleetward.model import Action, Change, DesiredObject, ObjectKey, Plan, StoredObject

TASK_BATCH = "TaskBatch"  # the kind whose report (the bulk-task API's shape) lists items
_CLOSE = 0.6  # how alike a name must be to be suggested (difflib's ratio)
_MAX_ID = 253  # longer strings of a spec cannot be an object's id: not looked up


@dataclass(frozen=True, slots=True)
class Target:
    """One --target: the text as given, the kind it names, and the glob over names."""

    text: str
    kind: str
    pattern: str

    def matches(self, address: str) -> bool:
        """Whether `address` (`Kind/id`, or an owner `Kind/name`) is one this target names."""
        kind, _, ident = address.partition("/")
        return kind == self.kind and fnmatch.fnmatchcase(ident, self.pattern)


def parse_targets(texts: Iterable[str]) -> tuple[Target, ...]:
    """The --target values as Targets; UsageError for one that names no kind."""
    known = {name.lower(): name for name in (*OBJECT_KINDS, *REGISTRY)}
    targets = []
    for text in texts:
        kind, sep, pattern = text.strip().partition("/")
        if not sep or not kind or not pattern:
            raise UsageError.one(
                f"--target {text!r} is not KIND/NAME",
                "A target is an object address (Asset/TRK-1) or a kind and a name glob "
                "(Asset/TRK-*, Fleet/eu-*: every object that fleet declares).",
                "Give --target KIND/NAME, e.g. --target Asset/TRK-1.",
                location="--target",
            )
        name = known.get(kind.lower())
        if name is None:
            choices = sorted(set(known.values()))
            raise UsageError.one(
                f"--target {text!r} names an unknown kind {kind!r}",
                f"Targets name an object kind or a manifest kind: {', '.join(choices)}.",
                did_you_mean(kind, choices, "Give one of those kinds."),
                location="--target",
            )
        targets.append(Target(text.strip(), name, pattern))
    return tuple(targets)


def target_plan(
    plan: Plan,
    targets: Sequence[Target],
    desired: Mapping[ObjectKey, DesiredObject],
    stored: Mapping[ObjectKey, StoredObject],
) -> Plan:
    """`plan` limited to the changes `targets` select and what they need (module doc).

    UsageError naming every target that matches no object of the revision, the
    store or the plan: a typo must not read as "no changes".
    """
    if not targets:
        return plan
    _refuse_unmatched(plan, targets, desired, stored)
    chosen = {
        c.address
        for c in plan.changes
        if any(t.matches(c.address) or t.matches(c.owner) for t in targets)
    }
    chosen |= _needed(plan.changes, chosen)
    kept = tuple(c for c in plan.changes if c.address in chosen)
    return replace(
        plan,
        changes=kept,
        targeted=tuple(t.text for t in targets),
        left_out=len(plan.changes) - len(kept),
        policies=_policies(plan.policies, kept),
        reports=_reports(plan, targets, chosen, desired),
    )


def _reports(
    plan: Plan,
    targets: Sequence[Target],
    chosen: set[ObjectKey],
    desired: Mapping[ObjectKey, DesiredObject],
) -> dict[str, Any]:
    """The plan's reports for what the targeted plan keeps: a TaskBatch item is processed
    when its task's change is kept, or when it has none and a target selects it."""
    report = plan.reports.get(TASK_BATCH)
    if not isinstance(report, Mapping):
        return dict(plan.reports)
    changed = {c.address for c in plan.changes}

    def selected(xid: str) -> bool:
        address = ObjectKey(f"{TASK.name}/{xid}")
        if address in changed:
            return address in chosen
        want = desired.get(address)
        owner = want.owner if want is not None else ""
        return any(t.matches(address) or t.matches(owner) for t in targets)

    return {**plan.reports, TASK_BATCH: targeted_report(report, selected)}


def _refuse_unmatched(
    plan: Plan,
    targets: Sequence[Target],
    desired: Mapping[ObjectKey, DesiredObject],
    stored: Mapping[ObjectKey, StoredObject],
) -> None:
    names: set[str] = set()
    for key, want in desired.items():
        names.update((key, want.owner))
    for key, have in stored.items():
        names.update((key, have.owner))
    for change in plan.changes:
        names.update((change.address, change.owner))
    unmatched = [t for t in targets if not any(t.matches(name) for name in names)]
    if not unmatched:
        return
    first = unmatched[0]
    same_kind = sorted(n for n in names if n.startswith(f"{first.kind}/"))
    otherwise = (
        f"Check the name; fleetward state show --kind {first.kind} lists what the store "
        "holds, and fleetward plan (without --target) what the revision changes."
    )
    # Names are compared without their kind: the shared `Kind/` would make any name of
    # the kind look close.
    close = difflib.get_close_matches(
        first.pattern, [n.partition("/")[2] for n in same_kind], n=1, cutoff=_CLOSE
    )
    raise UsageError.one(
        f"--target {', '.join(t.text for t in unmatched)} matches nothing",
        f"No object or manifest document of revision {plan.revision.short} or of the store "
        f"is named {first.text} ({len(same_kind)} of kind {first.kind} exist).",
        f'Did you mean "{first.kind}/{close[0]}"?' if close else otherwise,
        location="--target",
        targets=[t.text for t in unmatched],
    )


def _needed(changes: Sequence[Change], chosen: set[ObjectKey]) -> set[ObjectKey]:
    """The creates the chosen changes need, transitively (module doc)."""
    creates: dict[str, list[ObjectKey]] = {}
    for change in changes:
        if change.action is not Action.CREATE or change.after is None:
            continue
        for ident in _identifiers(change):
            creates.setdefault(ident, []).append(change.address)
    if not creates:
        return set()
    by_address = {c.address: c for c in changes}
    needed: set[ObjectKey] = set()
    queue = [by_address[a] for a in chosen]
    while queue:
        change = queue.pop()
        if change.after is None:
            continue
        for text in _strings(change.after.spec):
            for address in creates.get(text, ()):
                if address not in chosen and address not in needed:
                    needed.add(address)
                    queue.append(by_address[address])
    return needed


def _identifiers(change: Change) -> Iterator[str]:
    """The names a spec may reference a created object by: its id in the address, and the
    `id` (a UUID) its spec carries, if any."""
    yield change.address.partition("/")[2]
    assert change.after is not None
    spec_id = change.after.spec.get("id")
    if isinstance(spec_id, str):
        yield spec_id


def _strings(value: Any) -> Iterator[str]:
    """Every string of a JSON value short enough to be an id, depth first."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) <= _MAX_ID:
                yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _policies(
    policies: Mapping[str, Mapping[str, Any]], kept: Sequence[Change]
) -> dict[str, Mapping[str, Any]]:
    """The plan's policies that still govern a kept change, with their new counts."""
    counts = Counter(c.policy for c in kept if c.policy is not None)
    return {
        name: {**info, "changes": counts[name]} for name, info in policies.items() if counts[name]
    }


__all__ = ["Target", "parse_targets", "target_plan"]
