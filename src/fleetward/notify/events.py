"""Notification events: what the reporter hooks saw, once per change of state.

`EventLog` turns runs into events (the versioned JSON bodies of
`BODY_VERSION`, documented in the README). It keeps the last state per
revision, so a bad commit retried with backoff makes one `failed`, a run that
finds nothing to do makes none, and the first success after failures makes
one `recovered`. Held parts are remembered by policy, digest and what they wait
for: a part held for a window is told once, not at every poll. A revision is
told `planning` once, when a plan of it is about to write changes: a commit
status goes pending, then success or failure when the run ends (a revision that
fails before it has a plan goes straight to failure). A dry run writes nothing
and tells nothing.

Everything here is values in, values out: the reporter calls it on the run's
thread and queues what it returns.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from fleetward.decisions import Decision, Part
from fleetward.model import Change, Plan, Revision
from fleetward.operations import Operation, OperationState
from fleetward.planning import is_drift
from fleetward.runs import RunReport
from fleetward.timestamps import now_iso

BODY_VERSION = 1
MAX_ERRORS = 20  # errors in a `failed` body (errorCount says how many there were)
MAX_LISTED = 100  # objects or documents named in one body
# Events about changes: a target's SyncPolicy/kind selector applies to them. The
# others are about the whole revision or the daemon and reach every target.
SCOPED = frozenset({"planning", "applied", "held", "rejected", "drift-reverted"})
_FAILED = (OperationState.FAILURE, OperationState.TIMEOUT)
_SOURCE_KEY = "(source)"  # the state key of a run that never read a revision
REMEMBERED = 1000  # revisions whose last outcome is kept (an older one failing is told again)

Event = dict[str, Any]


class EventLog:
    """Events from reporter hooks, with the state that keeps them one per change."""

    def __init__(self, source: Mapping[str, Any], external_url: str | None = None) -> None:
        self.source = dict(source)
        self.external_url = external_url.rstrip("/") if external_url else None
        # revision (or _SOURCE_KEY) → "failed" | "ok", the latest last; REMEMBERED at most.
        self._outcome: OrderedDict[str, str] = OrderedDict()
        self._failing = False  # the last run that ended failed: the next success recovers
        self._held: set[tuple[Any, ...]] = set()  # held parts told, as of the last plan
        self._planned: str | None = None  # the last revision a `planning` event named
        self._dry_run = False  # the run in progress writes nothing

    def started(self, operation: Operation) -> None:
        """A run began: whether it is a dry run decides what its plan tells."""
        self._dry_run = _is_dry_run(operation)

    def planning(self, plan: Plan, decision: Decision | None) -> list[Event]:
        """A `planning` event the first time a plan of a revision is about to write
        changes (its due ones: a wholly held plan is told by `held` when the run ends)."""
        due = decision.due if decision is not None else plan.changes
        changes = [c for c in due if c.action.value != "noop"]
        if self._dry_run or not changes or plan.revision.id == self._planned:
            return []
        self._planned = plan.revision.id
        return [
            self._event(
                "planning",
                plan.revision,
                f"planning {len(changes)} changes of {plan.revision.short}",
                counts=_counts(changes),
                **_scope(changes),
            )
        ]

    def finished(self, report: RunReport) -> list[Event]:
        """The events of a finished run (none for a cancelled or unchanged one)."""
        state = report.operation.state
        if report.unchanged or state not in (*_FAILED, OperationState.SUCCESS):
            return []
        if _is_dry_run(report.operation):
            return []  # it changed nothing, and its requester reads its operation
        key = report.revision.id if report.revision else _SOURCE_KEY
        if state in _FAILED:
            self._failing = True
            if self._outcome.get(key) == "failed":
                return []  # the same revision failing again: a retry, not news
            self._told(key, "failed")
            return [self._failed(report)]
        self._told(key, "ok")
        events = []
        if self._failing:
            self._failing = False
            events.append(self._event("recovered", report.revision, _recovered_text(report)))
        events += self._applied(report)
        events += self._held_parts(report)
        return events

    def remembered(self) -> dict[str, Any]:
        """What was told, as JSON: kept by the store so a restarted daemon does not tell
        a failure (or a held part) again."""
        return {
            "outcomes": [[key, outcome] for key, outcome in self._outcome.items()],
            "failing": self._failing,
            "held": sorted(
                ([policy, digest, list(waiting)] for policy, digest, waiting in self._held),
                key=lambda held: (held[0] or "", held[1], held[2]),
            ),
            "planned": self._planned,
        }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Take back what `remembered` gave (KeyError, TypeError or ValueError if `doc`
        is not one; nothing is taken then)."""
        outcomes = OrderedDict((str(k), str(v)) for k, v in doc["outcomes"])
        held = {(p, str(d), tuple(str(w) for w in waiting)) for p, d, waiting in doc["held"]}
        planned = doc["planned"]
        self._outcome = outcomes
        self._bound()
        self._failing = bool(doc["failing"])
        self._held = held
        self._planned = str(planned) if planned is not None else None

    def _told(self, key: str, outcome: str) -> None:
        self._outcome[key] = outcome
        self._outcome.move_to_end(key)
        self._bound()

    def _bound(self) -> None:
        while len(self._outcome) > REMEMBERED:
            self._outcome.popitem(last=False)

    def daemon(self, kind: str, detail: Mapping[str, Any]) -> Event:
        """`daemon-started` or `daemon-stopped`."""
        return self._event(kind, None, kind.replace("-", " "), daemon=dict(detail))

    def test(self, revision: Revision | None) -> Event:
        """What `fleetward notify test` sends."""
        return self._event("test", revision, "fleetward notification test")

    # -- the events of a run ----------------------------------------------------------

    def _failed(self, report: RunReport) -> Event:
        problems = report.problems
        first = problems[0] if problems else None
        where = f"{first.location}: " if first is not None and first.location else ""
        what = (
            f"{report.manifest_errors} manifest errors"
            if report.manifest_errors
            else "the source could not be read"
            if report.fetch_failed
            else report.operation.message or "the run failed"
        )
        summary = f"{_short(report.revision)} failed: {what}"
        if first is not None:
            summary += f"; first: {where}{first.error}"
        return self._event(
            "failed",
            report.revision,
            summary,
            errors=[
                {
                    "error": p.error,
                    "reason": p.reason,
                    "resolution": p.resolution,
                    "location": p.location,
                }
                for p in problems[:MAX_ERRORS]
            ],
            errorCount=len(problems),
            manifestErrors=report.manifest_errors,
            message=report.operation.message,
        )

    def _applied(self, report: RunReport) -> list[Event]:
        applied = report.applied
        if applied is None or not applied.wrote or report.plan is None:
            return []
        written = list(report.decision.due if report.decision else report.plan.changes)
        written = [c for c in written if c.action.value != "noop"]
        counts = {action: n for action, n in applied.counts.items() if n}
        if not counts:
            return []
        text = ", ".join(f"{n} {_PAST.get(a, a)}" for a, n in counts.items())
        events = [
            self._event(
                "applied",
                report.revision,
                f"applied {_short(report.revision)}: {text}",
                counts=counts,
                **_scope(written),
            )
        ]
        drifted = [c for c in written if is_drift(c)]
        if drifted:
            events.append(
                self._event(
                    "drift-reverted",
                    report.revision,
                    f"reverted drift of {len(drifted)} objects to {_short(report.revision)}",
                    objects=[c.address for c in drifted[:MAX_LISTED]],
                    **_scope(drifted),
                )
            )
        return events

    def _held_parts(self, report: RunReport) -> list[Event]:
        if report.decision is None:
            return []  # no plan this run: what is held is unknown, keep what was told
        now: set[tuple[Any, ...]] = set()
        events = []
        for part in report.decision.held:
            key = (part.policy, part.digest, part.waiting_for)
            now.add(key)
            if key in self._held:
                continue
            kind = "rejected" if "rejected" in part.waiting_for else "held"
            held = self._held_json(part)
            events.append(
                self._event(
                    kind,
                    report.revision,
                    _held_text(kind, report.revision, held),
                    held=[held],
                    **_scope(part.changes),
                )
            )
        self._held = now
        return events

    def _held_json(self, part: Part) -> dict[str, Any]:
        documents = sorted({c.owner for c in part.changes})
        approve = None
        if "approval" in part.waiting_for and part.operation_id and self.external_url:
            approve = f"{self.external_url}/v0/operations/{part.operation_id}/approve"
        return {
            "policy": part.policy,
            "waitingFor": list(part.waiting_for),
            "changes": len(part.changes),
            "documents": documents[:MAX_LISTED],
            "operationId": part.operation_id,
            "approveUrl": approve,
            "window": (
                {
                    "open": part.window.open,
                    "opensAt": _iso(part.window.opens_at),
                    "closesAt": _iso(part.window.closes_at),
                }
                if part.window is not None
                else None
            ),
        }

    def _event(self, kind: str, revision: Revision | None, summary: str, **fields: Any) -> Event:
        return {
            "version": BODY_VERSION,
            "id": str(uuid.uuid4()),
            "type": kind,
            "occurredAt": now_iso(),
            "summary": summary,
            "source": self.source,
            "revision": (
                {"id": revision.id, "short": revision.short, "kind": revision.kind}
                if revision is not None
                else None
            ),
            **fields,
        }


def _is_dry_run(operation: Operation) -> bool:
    return bool(operation.arguments.get("dryRun"))


_PAST = {"create": "created", "update": "updated", "stop": "stopped", "delete": "deleted"}


def _counts(changes: Iterable[Change]) -> dict[str, int]:
    out: dict[str, int] = {}
    for change in changes:
        out[change.action.value] = out.get(change.action.value, 0) + 1
    return out


def _scope(changes: Iterable[Change]) -> dict[str, list[str]]:
    """The kinds and SyncPolicies of `changes`: what target selectors match."""
    listed = list(changes)
    return {
        "kinds": sorted({c.kind for c in listed}),
        "policies": sorted({c.policy for c in listed if c.policy}),
    }


def _short(revision: Revision | None) -> str:
    return revision.short if revision is not None else "the source"


def _recovered_text(report: RunReport) -> str:
    return f"{_short(report.revision)} reconciled again after failures"


def _held_text(kind: str, revision: Revision | None, held: Mapping[str, Any]) -> str:
    who = f"SyncPolicy {held['policy']}" if held["policy"] else "the daemon"
    docs = ", ".join(held["documents"][:5])
    more = len(held["documents"]) - 5
    if more > 0:
        docs += f" and {more} more"
    if kind == "rejected":
        return f"{_short(revision)}: {held['changes']} changes of {who} rejected ({docs})"
    waiting = " and ".join(held["waitingFor"])
    return f"{_short(revision)}: {held['changes']} changes held by {who} for {waiting}: {docs}"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def matches(
    event: Mapping[str, Any], wanted: frozenset[str], policies: Iterable[str], kinds: Iterable[str]
) -> bool:
    """Whether a target with this filter and these selectors is sent `event`."""
    kind = event.get("type")
    if kind != "test" and kind not in wanted:
        return False
    if kind not in SCOPED:
        return True
    policy_set, kind_set = set(policies), set(kinds)
    if policy_set and not policy_set & set(event.get("policies") or ()):
        return False
    return not kind_set or bool(kind_set & set(event.get("kinds") or ()))


__all__ = ["BODY_VERSION", "REMEMBERED", "SCOPED", "Event", "EventLog", "matches"]
