"""A run's record and what its reporters hear: the engine's bookkeeping of one run.

The run's Operation is recorded in the store's log as the run goes: its end
always (once the store exists: a mistyped location is not created by a
failure), and with `record_progress` also its start and the moment before the
write, so a crash in between leaves a non-final record that the next daemon
start marks failed. A record that cannot be written never fails the run.

Reporters hear the run's hooks in order, each at most once. A run the stopping
daemon abandons (`abandon`) is told by `run_abandoned` and by nothing after it:
every hook of a run is called under the lock `abandon` takes, and dropped once
the run is abandoned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetward.engine.run import Run, failure_message
from fleetward.errors import FleetwardError, ManifestError, PlanError, SourceError
from fleetward.operations import Operation, OperationState
from fleetward.reporting import Reporter
from fleetward.runs import RunReport, stopped_message
from fleetward.store import OperationStore, Store

__all__ = ["Records"]

S = OperationState


@dataclass(eq=False)
class Records:
    """The record of the engine's runs in `operations`, and the `reporter` they tell."""

    store: Store
    operations: OperationStore
    reporter: Reporter
    # Record the start and the moment before the write too, not only the end.
    record_progress: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _running: Run | None = field(default=None, init=False)

    def begin(self, run: Run) -> None:
        """`run` is the one in progress (the one `abandon` ends)."""
        with self._lock:
            self._running = run

    def end(self) -> None:
        with self._lock:
            self._running = None

    def abandon(self, cause: str) -> Operation | None:
        """End the run in progress CANCELLED, recorded and told as such (see
        `Engine.abandon`); None: no run to end."""
        with self._lock:
            run = self._running
            if run is None or run.op.state.final or run.abandoned is not None:
                return None
            op = run.op.move(S.CANCELLED, run.governor.now(), stopped_message(cause, run.where))
            run.abandoned = run.op = op
            self.record(run, op)
            # Under the lock the run's own hooks take too: none of them follows this one.
            self.reporter.run_abandoned(op)
        return op

    def announce(self, run: Run) -> None:
        """Tell the reporters the run started (once)."""
        if not run.announced:
            run.announced = True
            self.tell(run, self.reporter.run_started, run.op)

    def finished(self, run: Run, report: RunReport) -> None:
        """Tell the reporters how the run ended (announced first, if it was not)."""
        self.announce(run)
        self.tell(run, self.reporter.run_finished, report)

    def tell(self, run: Run, hook: Callable[..., None], *args: object) -> None:
        """Call a reporter's `hook` for `run`, unless the stopping daemon abandoned the run:
        after `run_abandoned` a run reports nothing more (`abandon` holds the same lock)."""
        with self._lock:
            if run.abandoned is None:
                hook(*args)

    def move(
        self, run: Run, to: OperationState | None, message: str = "", persist: bool = True
    ) -> Operation:
        """Move the run's operation to `to` (None: record it as it is)."""
        with self._lock:
            if run.abandoned is not None:
                run.op = run.abandoned  # the stopping daemon ended it: that record stands
                return run.op
            if to is not None:
                run.op = run.op.move(to, run.governor.now(), message)
            final = to is not None and to.final
            progress = to is None or to in (S.RESOLVING, S.DISPATCHING)
            wanted = persist and (final or (progress and self.record_progress))
            if wanted and self.store.exists():  # a failure never makes a mistyped location
                self.record(run, run.op)
            return run.op

    def failed(self, run: Run, exc: FleetwardError) -> None:
        """End the run FAILURE for `exc`, its problems counted where the report shows them."""
        run.failure = exc
        run.problems = exc.problems
        if isinstance(exc, ManifestError | PlanError):
            run.manifest_errors = len(exc.problems)
        if isinstance(exc, SourceError):
            run.fetch_failed = True
        run.op = run.op.with_errors(exc.problems)
        self.move(run, S.FAILURE, failure_message(exc))

    def recorded(self, op: Operation) -> bool:
        """Whether the log holds `op` (recorded when queued: a webhook's, an API's)."""
        try:
            return self.operations.get(op.operation_id) is not None
        except FleetwardError:
            return True  # unknown: recording its end is the safe side

    def record(self, run: Run, op: Operation) -> None:
        try:
            self.operations.record(op)
        except FleetwardError as exc:
            # The log is a record of the work, not the work: a damaged or full log
            # must not stop reconciling. The run's report still carries it.
            run.governor.unrecorded(op, exc)

    def report(self, run: Run) -> RunReport:
        """What the run did, for its caller and its reporters."""
        decision = run.decision
        if decision is not None and decision.held:
            decision = run.governor.carried(decision)
        snapshot = run.store
        if snapshot is None:
            try:
                snapshot = self.store.read()
            except FleetwardError:
                snapshot = None
        return RunReport(
            operation=run.op,
            revision=run.revision,
            plan=run.plan,
            applied=run.applied,
            store=snapshot,
            problems=tuple(run.problems),
            manifest_errors=run.manifest_errors,
            fetch_failed=run.fetch_failed,
            phases=run.phases,
            duration=time.monotonic() - run.started,
            decision=decision,
            policies=run.policies,
            suspension=run.suspension,
            pin=run.pin,
            failure=run.failure,
            unchanged=run.unchanged,
            documents=run.documents,
        )
