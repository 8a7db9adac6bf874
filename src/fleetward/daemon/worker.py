"""The run loop's step: admit a taken operation, run it, and act on how it ended.

The one place where a failure's retry role (errors.py) becomes an outcome, as
kopf turns TemporaryError / PermanentError into one. A TemporaryError (the
source or the store could not be read) is retried after its delay or the
backoff: 1 s, 2 s, 4 s … up to the poll interval. A PermanentError (invalid
manifests, a plan a kind refuses, a guard) would fail the same way until
something changes, so it is recorded once and not retried: the daemon's own
triggers (poll, watch, webhook, window) still read the source, and a run that
finds the same revision stops there without a record; a new revision, or an
operator's request (POST /v0/operations/, an approval), runs in full.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fleetward.daemon.runs import AfterFetch, RunReport
from fleetward.daemon.triggers import Backoff
from fleetward.errors import FleetwardError, PermanentError, TemporaryError
from fleetward.model import Revision
from fleetward.operations import Operation, OperationState

logger = logging.getLogger(__name__)

# Triggers that are a person asking: they run even at a revision that failed for good.
OPERATOR_TRIGGERS = frozenset({"api", "approval"})


@dataclass(frozen=True, slots=True)
class FailedRevision:
    """A revision whose run failed permanently: the daemon waits for it to change."""

    revision: str
    short: str
    operation_id: str
    message: str
    # The store's serial when the failure also read the store (a guard): a write by
    # someone else (`fleetward apply`, `tasks set-status`) is then a change too.
    serial: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What follows a run: a retry in `retry_in` seconds, or none."""

    retry_in: float | None = None
    waiting: FailedRevision | None = None  # the failed revision the daemon waits to leave


class Worker:
    """Takes one operation through admission, its run and its outcome."""

    def __init__(
        self,
        admit: Callable[[Operation], Operation | None],
        reconcile: Callable[[Operation, AfterFetch | None], RunReport],
        backoff: Backoff,
        retry: Callable[[float], None],
        store_serial: Callable[[], int] | None = None,
    ) -> None:
        self._admit = admit
        self._reconcile = reconcile
        self.backoff = backoff
        self._retry = retry  # asks for a run in that many seconds
        self._store_serial = store_serial
        self.waiting: FailedRevision | None = None

    def handle(self, op: Operation) -> RunReport | None:
        """Run `op` if it is admitted; the run's report (None: it did not run)."""
        try:
            admitted = self._admit(op)
            if admitted is None:
                return None  # ended while queued, or its window has not opened
            report = self._reconcile(admitted, self._unchanged_check(admitted))
        except Exception:  # a bug outside the run itself: log it, keep reconciling
            logger.exception("internal error around a reconcile")
            self._retry(self.backoff.failed())
            return None
        outcome = self.outcome(report)
        if outcome.retry_in is not None:
            self._retry(outcome.retry_in)
        return report

    def outcome(self, report: RunReport) -> Outcome:
        """How a run ended decides what follows (and resets or advances the backoff)."""
        op = report.operation
        if report.unchanged:
            return Outcome(waiting=self.waiting)  # nothing ran: keep waiting
        if op.state is not OperationState.FAILURE:
            # Applied, or cancelled or timed out on purpose: nothing to retry.
            self.backoff.succeeded()
            if op.state is OperationState.SUCCESS:
                self.waiting = None
            return Outcome(waiting=self.waiting)
        failure = report.failure
        if isinstance(failure, PermanentError) and report.revision is not None:
            self.backoff.succeeded()
            serial = None
            if failure.depends_on_store and self._store_serial is not None:
                serial = self._serial()
            self.waiting = FailedRevision(
                report.revision.id, report.revision.short, op.operation_id, op.message, serial
            )
            logger.warning(
                "revision %s cannot be applied as it is; not retrying until a new revision "
                "or an operator's request",
                report.revision.short,
                extra={"fields": {"operation": op.operation_id}},
            )
            return Outcome(waiting=self.waiting)
        delay = self.backoff.failed()
        if isinstance(failure, TemporaryError) and failure.delay is not None:
            delay = failure.delay
        return Outcome(retry_in=delay, waiting=self.waiting)

    def _serial(self) -> int | None:
        """The store's serial now; None when it cannot be read (the run will say why)."""
        assert self._store_serial is not None
        try:
            return self._store_serial()
        except FleetwardError:
            return None

    def forget(self) -> None:
        """Something other than the revision changed (a reload): try it again."""
        self.waiting = None

    def _unchanged_check(self, op: Operation) -> AfterFetch | None:
        """For the daemon's own runs while a revision's failure waits for a change: the
        check that stops the run if the source is still at that revision."""
        waiting = self.waiting
        if waiting is None or not daemons_own(op):
            return None

        def unchanged(revision: Revision) -> str | None:
            if revision.id != waiting.revision:
                return None
            if waiting.serial is not None and self._serial() != waiting.serial:
                return None  # the store moved under the verdict: plan again
            return (
                f"revision {waiting.short} is unchanged since operation {waiting.operation_id} "
                f"failed ({waiting.message}); waiting for a new revision or an operator's "
                "request"
            )

        return unchanged


def daemons_own(op: Operation) -> bool:
    """A run the daemon started by itself (poll, watch, webhook, window, retry), not
    one a person asked for or shaped (a query, arguments, a window of their own)."""
    triggers = set(op.trigger.split(","))
    return (
        not triggers & OPERATOR_TRIGGERS
        and op.policy is None
        and not op.operation_device_query
        and not op.arguments
        and op.schedule_type == "IMMEDIATE"
    )


__all__ = ["OPERATOR_TRIGGERS", "FailedRevision", "Outcome", "Worker", "daemons_own"]
