"""Which SyncPolicy governs each change. Pure.

A SyncPolicy's selector picks manifest documents; the policy governs every
object those documents produce (a Fleet's assets, a rule's generated assets,
a batch's tasks). Objects no policy selects follow the daemon's default:
applied at once, without approval.

When several policies select one document, the strictest governs it, and
only it (the plan names it):

1. a suspended policy before any other;
2. then one needing manual approval;
3. then one with a WINDOW schedule;
4. then the lower `maxStopFraction`;
5. then the policy whose name sorts first.

SyncPolicy documents themselves are never governed: a policy change always
applies at once, so a policy can never lock itself in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetward.kinds import Document
from fleetward.kinds.sync_policy import SyncPolicySpec
from fleetward.model import Change, canonical_json
from fleetward.policy.windows import WindowState, window_state
from fleetward.timestamps import to_iso

POLICY_KIND = "SyncPolicy"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    spec: SyncPolicySpec

    @property
    def strictness(self) -> tuple[bool, bool, bool, float, str]:
        """Lowest first is strictest: suspended, manual, WINDOW, lower maxStopFraction, name."""
        spec = self.spec
        return (
            not spec.suspend,
            not self.manual,
            not self.windowed,
            spec.maxStopFraction,
            self.name,
        )

    @property
    def manual(self) -> bool:
        return self.spec.approval == "manual"

    @property
    def windowed(self) -> bool:
        return self.spec.schedule.type == "WINDOW"

    def describe(self, now: datetime | None = None) -> dict[str, Any]:
        """What plans and status files show of the policy (its window as of `now`)."""
        spec = self.spec
        out: dict[str, Any] = {
            "schedule": spec.schedule.describe(),
            "approval": spec.approval,
            "maxStopFraction": spec.maxStopFraction,
            "suspend": spec.suspend,
        }
        if spec.minStopCount is not None:  # else the planner's --min-stop-count
            out["minStopCount"] = spec.minStopCount
        if self.windowed and now is not None:
            out["window"] = window_json(window_state(spec.schedule, now))
        return out


def window_json(state: WindowState) -> dict[str, Any]:
    """A window as plans, status files and summaries show it."""
    opens, closes = to_iso(state.opens_at), to_iso(state.closes_at)
    return {"open": state.open, "opensAt": opens, "closesAt": closes}


def owner_labels_of(documents: Iterable[tuple[str, Document]]) -> dict[str, Mapping[str, str]]:
    """Each document's labels by its address ("Fleet/north" → labels)."""
    return {doc.address: dict(doc.metadata.labels) for _, doc in documents}


def policies_of(documents: Iterable[tuple[str, Document]]) -> tuple[Policy, ...]:
    """The SyncPolicies a revision declares, in name order."""
    found = [
        Policy(doc.name, doc.spec)
        for _, doc in documents
        if doc.kind == POLICY_KIND and isinstance(doc.spec, SyncPolicySpec)
    ]
    return tuple(sorted(found, key=lambda p: p.name))


class Governance:
    """Owner document → the policy governing what it produces, memoised per owner."""

    def __init__(
        self,
        policies: Iterable[Policy],
        documents: Iterable[tuple[str, Document]],
        applied_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.policies = tuple(policies)
        self.by_name = {p.name: p for p in self.policies}
        # A document gone from Git is judged by the labels it had when last applied.
        self._labels = {**(applied_labels or {}), **owner_labels_of(documents)}
        self._memo: dict[str, Policy | None] = {}

    def __bool__(self) -> bool:
        return bool(self.policies)

    def of_owner(self, owner: str) -> Policy | None:
        """The policy governing objects of document `owner` ("Kind/name"); None: the default."""
        try:
            return self._memo[owner]
        except KeyError:
            pass
        kind, _, name = owner.partition("/")
        governing: Policy | None = None
        if kind != POLICY_KIND and self.policies:
            # None: a document the store never applied either; label conditions count
            # as met, so its removals stay governed.
            labels = self._labels.get(owner)
            chosen = [p for p in self.policies if p.spec.selector.matches(kind, name, labels)]
            if chosen:
                governing = min(chosen, key=lambda p: p.strictness)
        self._memo[owner] = governing
        return governing


def changes_digest(changes: Iterable[Change]) -> str:
    """A digest of what a set of changes would write: approval binds to exactly this."""
    h = hashlib.sha256()
    for c in sorted(changes, key=lambda c: c.address):
        after = c.after
        h.update(
            canonical_json(
                [
                    c.address,
                    c.action.value,
                    after.state.value if after else None,
                    after.owner if after else None,
                    after.spec if after else None,
                ]
            ).encode()
        )
        h.update(b"\n")
    return h.hexdigest()[:32]


__all__ = [
    "POLICY_KIND",
    "Governance",
    "Policy",
    "changes_digest",
    "owner_labels_of",
    "policies_of",
    "window_json",
]
