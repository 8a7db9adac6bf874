"""What the daemon knows about its own health: the last run, counters, readiness.

A `Reporter`: the engine hands it every finished run's `RunReport`, and with
the operation log it was given it counts the operations by state; `/readyz`,
`/metrics` and `summary.json` read from here. Thread-safe: the worker writes
while HTTP reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleetward.errors import FleetwardError, UnverifiedRevision
from fleetward.model import StoreSnapshot
from fleetward.operations import OperationState
from fleetward.planning import is_drift
from fleetward.reporting import Reporter
from fleetward.runs import RunReport
from fleetward.store import OperationStore

logger = logging.getLogger(__name__)

# Refused revisions remembered so a refusal read again (an operator's run, a restart of
# the watch) is not counted again; far more than a repository refuses between applies.
_REFUSALS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Counts:
    """Per-run aggregates, computed once per run (never per scrape)."""

    objects: dict[tuple[str, str], int]  # (kind, state) → count
    changes: dict[str, int]  # action → count in the last plan
    drift: int


def count_store(store: StoreSnapshot | None) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    if store is not None:
        for obj in store.objects.values():
            counts[(obj.kind, obj.state.value)] += 1
    return dict(counts)


@dataclass(eq=False)
class Health(Reporter):
    ready_max_age: float  # seconds; readiness fails when the last good fetch or run is older
    last: RunReport | None = None
    counts: Counts = field(default_factory=lambda: Counts({}, {}, 0))
    last_success_at: float | None = None
    last_fetch_ok_at: float | None = None
    reconcile_total: Counter[str] = field(default_factory=Counter)
    fetch_failures_total: int = 0
    operations_by_state: dict[str, int] = field(default_factory=dict)
    # Errors of the last revision that was read: a run that could not fetch says
    # nothing about the tracked revision, so it keeps the count it found.
    manifest_errors: int = 0
    # --verify-signatures: revisions refused (each counted once, however often it is
    # read), and why the revision the last run read was refused (None: it was not).
    unverified_revisions_total: int = 0
    refused: str | None = None
    # Documents failure isolation held back in the last revision planned (addresses): the
    # rest of it is applied, these stay at their last applied version until fixed.
    held_documents: tuple[str, ...] = ()
    planned: RunReport | None = None  # the last run that made a plan (held parts, policies)
    alive: Callable[[], bool] = lambda: True  # the reconcile worker is running
    # The operation log counted after every run (`fleetward_operations{state}`).
    operations: OperationStore | None = None
    # "leader": this daemon fetches, plans and applies (the only role with a file store);
    # "standby": a replica of a PostgreSQL store that serves reads and requests and waits
    # to take the lead. `store_problem`: why the standby cannot reach the database.
    role: str = "leader"
    store_problem: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counted: StoreSnapshot | None = field(default=None, repr=False)
    _counted_objects: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    _refused_ids: dict[str, None] = field(default_factory=dict, repr=False)  # oldest first

    def run_finished(self, report: RunReport) -> None:
        """Take in a finished run, then count the operation log as the run left it."""
        self.record(report)
        if self.operations is None:
            return
        try:
            counts = Counter(o.state.name for o in self.operations.all())
        except FleetwardError as exc:  # a damaged log: the counts of the last good read stay
            logger.error("cannot count the operation log: %s", exc)
            return
        self.set_operations(dict(counts))

    def record(self, report: RunReport) -> None:
        now = time.time()
        objects = None
        if report.store is not None:
            # Runs that wrote nothing hand back the very snapshot counted last time.
            if report.store is not self._counted:
                self._counted_objects = count_store(report.store)
                self._counted = report.store
            objects = self._counted_objects
        plan = report.plan
        drift = 0
        changes: dict[str, int] = {}
        if plan is not None:
            changes = plan.summary()
            drift = sum(1 for c in plan.changes if is_drift(c))
        with self._lock:
            self.last = report
            if report.decision is not None:
                # What the last plan held back: a run that failed before planning (a
                # fetch failure, manifest errors) says nothing new about it.
                self.planned = report
            result = _result(report.operation.state)
            self.reconcile_total[result] += 1
            if report.fetch_failed:
                self.fetch_failures_total += 1
            else:
                self.manifest_errors = report.manifest_errors
                if report.revision is not None:
                    self.last_fetch_ok_at = now
                    self._note_refusal(report)
                if plan is not None or report.manifest_errors:
                    # A run stopped before planning for another cause (cancelled, a store
                    # error) says nothing new about which documents are held.
                    self.held_documents = tuple(h.address for h in plan.held) if plan else ()
            if report.succeeded:
                self.last_success_at = now
                # A successful apply reverted the drift it found.
                drift = 0 if report.applied is not None else drift
            previous = self.counts
            self.counts = Counts(
                objects if objects is not None else previous.objects,
                changes,  # a run that made no plan planned no changes
                drift if plan is not None else previous.drift,
            )

    def _note_refusal(self, report: RunReport) -> None:
        """Whether the revision just read was refused for its signature (lock held)."""
        failure = report.failure
        if not isinstance(failure, UnverifiedRevision) or report.revision is None:
            self.refused = None
            return
        first = failure.problems[0]
        self.refused = f"revision {report.revision.short} is refused: {first.error}"
        if report.revision.id not in self._refused_ids:
            self.unverified_revisions_total += 1
            self._refused_ids[report.revision.id] = None
            while len(self._refused_ids) > _REFUSALS_KEPT:
                del self._refused_ids[next(iter(self._refused_ids))]

    def set_operations(self, by_state: dict[str, int]) -> None:
        with self._lock:
            self.operations_by_state = dict(by_state)

    def readiness(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        """(ready, the checks and why) — for /readyz and summary.json."""
        now = time.time() if now is None else now
        if self.role == "standby":
            return self._standby_readiness()
        with self._lock:
            last = self.last
            checks: dict[str, Any] = {}
            reasons: list[str] = []
            if self.last_success_at is None:
                reasons.append("no reconcile has succeeded yet")
            else:
                age = now - self.last_success_at
                checks["lastSuccessAgeSeconds"] = round(age, 3)
                if age > self.ready_max_age:
                    reasons.append(
                        f"the last successful reconcile was {age:.0f}s ago "
                        f"(more than {self.ready_max_age:g}s)"
                    )
            if self.last_fetch_ok_at is not None:
                fetch_age = now - self.last_fetch_ok_at
                checks["lastFetchAgeSeconds"] = round(fetch_age, 3)
                if fetch_age > self.ready_max_age:
                    reasons.append(
                        f"the source was last fetched {fetch_age:.0f}s ago "
                        f"(more than {self.ready_max_age:g}s)"
                    )
            if self.manifest_errors:
                reasons.append(
                    f"the tracked revision has {self.manifest_errors} manifest error(s); "
                    "the last good revision stays applied"
                )
            if self.refused is not None:
                reasons.append(f"{self.refused}; the last good revision stays applied")
            if self.held_documents:
                reasons.append(_held_reason(self.held_documents))
            if last is not None:
                checks["lastOperation"] = {
                    "id": last.operation.operation_id,
                    "state": last.operation.state.name,
                    "message": last.operation.message,
                }
            if last is not None and last.pin is not None:
                # Pinned is ready (the pinned revision is reconciled), but says so.
                checks["pinned"] = last.pin.to_dict()
            checks["maxAgeSeconds"] = self.ready_max_age
        body = {"ready": not reasons, "role": "leader", "reasons": reasons, "checks": checks}
        return not reasons, body

    def _standby_readiness(self) -> tuple[bool, dict[str, Any]]:
        """A standby is ready while it reaches the database: it serves the read API and
        takes operator requests from there (as Argo CD's and Flux's standbys stay Ready);
        its own runs say nothing, it has none."""
        problem = self.store_problem
        reasons = [] if problem is None else [f"the store cannot be reached: {problem}"]
        body = {"ready": not reasons, "role": "standby", "reasons": reasons, "checks": {}}
        return not reasons, body


_NAMED_HELD = 10  # documents /readyz names; summary.json lists them all


def _held_reason(held: tuple[str, ...]) -> str:
    named = ", ".join(held[:_NAMED_HELD])
    more = f" and {len(held) - _NAMED_HELD} more" if len(held) > _NAMED_HELD else ""
    return (
        f"failure isolation holds back {len(held)} document(s) of the tracked revision "
        f"({named}{more}); they stay at their last applied version until fixed"
    )


def _result(state: OperationState) -> str:
    return {
        OperationState.SUCCESS: "success",
        OperationState.CANCELLED: "cancelled",
        OperationState.TIMEOUT: "timeout",
    }.get(state, "failure")


__all__ = ["Counts", "Health", "count_store"]
