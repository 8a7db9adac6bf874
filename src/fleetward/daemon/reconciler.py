"""One reconcile as the daemon runs it: the engine's converge, governed by operations control.

The converge itself (lock → resolve → plan → decide → apply → record) is
`fleetward.engine`'s, the same one `fleetward apply` runs. What the daemon adds
is its `Governor`: SyncPolicies' windows and approvals, `fleetward suspend`,
operators' cancels and deadlines (`Control`), and the stopping process, checked
at every checkpoint of the run and once more at the write. The engine keeps the
caches across runs, so a warm run is cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from datetime import timedelta

from fleetward.daemon.control import Control
from fleetward.daemon.triggers import Coalescer
from fleetward.decisions import Decision, decide, hold_overruns, with_carriers
from fleetward.document_cache import DocumentCache
from fleetward.engine import Engine, Governor, Verdict
from fleetward.errors import FleetwardError
from fleetward.model import Plan
from fleetward.operations import Operation, OperationState
from fleetward.policy import Policy, parse_device_query
from fleetward.reporting import Reporter
from fleetward.runs import AfterFetch, Interrupted, RunReport, RunSettings, StopCause, Stopping
from fleetward.store import OperationStore, Store, open_store

logger = logging.getLogger("fleetward.daemon")

S = OperationState


class ControlGovernor(Governor):
    """The daemon's say over a run: `Control`'s decisions and checkpoints, and the stop."""

    def __init__(self, control: Control, stop_cause: StopCause) -> None:
        self.control = control
        self.stop_cause = stop_cause

    def now(self) -> str:
        return self.control.now_iso()

    def begin(self, op: Operation) -> None:
        self.control.begin(op)

    def deadline(self) -> str | None:
        return self.control.deadline_iso()

    def checkpoint(self, op: Operation, where: str) -> None:
        """Operators' stops, deadlines and the daemon's own stop (SIGTERM)."""
        cause = self.stop_cause()
        if cause is not None:
            raise Stopping(cause, where)
        self.control.checkpoint(op)

    def guarded(self) -> threading.RLock:
        return self.control.mutex

    def decide(
        self,
        op: Operation,
        plan: Plan,
        policies: Mapping[str, Policy],
        blocked: frozenset[str],
    ) -> Verdict:
        control = self.control
        # A stop asked for while planning lands here, before the paths that write
        # nothing (a dry run, nothing due) could answer SUCCESS to it.
        control.checkpoint(op)
        query = parse_device_query(op.operation_device_query) if op.operation_device_query else None
        # Read here, not before planning: a suspend written while this run planned
        # must stop its write.
        suspension = control.suspension()
        decision = decide(
            plan,
            policies,
            control.clock(),
            query=query,
            suspended=suspension is not None,
            live=control.live_by_policy(),
            rejected=control.rejected(),
            blocked=blocked,
        )
        return Verdict(decision, suspension)

    def last_look(
        self, op: Operation, decision: Decision, policies: Mapping[str, Policy]
    ) -> tuple[Decision, list[str]]:
        """Under the write gate: the stop, operators, a suspend, and windows closing
        before a write as long as the last one would end."""
        cause = self.stop_cause()
        if cause is not None:
            raise Stopping(cause, "before the write")
        self.control.checkpoint(op)
        if self.control.suspension() is not None:
            raise Interrupted(
                S.CANCELLED,
                "the daemon was suspended (fleetward suspend) before the write; "
                "nothing was written",
            )
        expected = timedelta(seconds=self.control.write_seconds)
        return hold_overruns(decision, policies, self.control.clock() + expected)

    def settle(
        self,
        op: Operation,
        plan: Plan,
        decision: Decision,
        serial: int | None,
        write_seconds: float = 0.0,
    ) -> None:
        if serial is not None:
            self.control.write_seconds = write_seconds  # the next overrun estimate
        self.control.settle(op, plan, decision, written=serial is not None, serial=serial)

    def carried(self, decision: Decision) -> Decision:
        try:
            return with_carriers(decision, self.control.live_by_policy())
        except FleetwardError:
            return decision  # the log is unreadable: the report keeps what the run decided

    def unrecorded(self, op: Operation, error: FleetwardError) -> None:
        logger.error(
            "cannot record operation %s: %s",
            op.operation_id,
            error.problems[0].error if error.problems else error,
            extra={"fields": {"reason": error.problems[0].reason if error.problems else ""}},
        )

    def end(self) -> None:
        self.control.end()


@dataclass
class Reconciler:
    """The daemon's engine over its store and operation log, run under its control."""

    settings: RunSettings
    operations: OperationStore
    control: Control | None = None
    # The daemon's store (whose log `operations` is); None: opened from the settings.
    opened: InitVar[Store | None] = None
    # Who hears of every run (status files, metrics, health, logs): the daemon's.
    reporter: InitVar[Reporter | None] = None
    # Parsed manifests (None: in memory only); a daemon's outlive the process.
    documents: InitVar[DocumentCache | None] = None
    engine: Engine = field(init=False)

    def __post_init__(
        self, opened: Store | None, reporter: Reporter | None, documents: DocumentCache | None
    ) -> None:
        store = opened if opened is not None else open_store(self.settings.state_dir)
        self.engine = Engine(
            store,
            reporter or Reporter(),
            operations=self.operations,
            documents=documents if documents is not None else DocumentCache(),
        )
        if self.control is None:
            self.control = Control(
                self.operations,
                Coalescer(),
                self.settings.state_dir,
                self.settings.operation_timeout,
                rejections=self.store.rejections,
                suspensions=self.store,
            )

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def write_gate(self) -> threading.Lock:
        """Held for the whole store write: stopping takes it before the process exits."""
        return self.engine.write_gate

    @property
    def ctl(self) -> Control:
        assert self.control is not None
        return self.control

    def run(
        self,
        op: Operation,
        stop_cause: StopCause = lambda: None,
        unchanged: AfterFetch | None = None,
    ) -> RunReport:
        """Run `op` to a final state; `stop_cause` says when the daemon is stopping.

        With `unchanged`, the run is recorded only once the revision is known and
        `unchanged` lets it go on (see `Engine.converge`)."""
        governor = ControlGovernor(self.ctl, stop_cause)
        return self.engine.converge(op, self.settings, governor, after_fetch=unchanged)

    def abandon(self, cause: str) -> Operation | None:
        """End the run in progress CANCELLED, from the thread stopping the daemon (the
        caller holds `write_gate`); None: no run to end. See `Engine.abandon`."""
        return self.engine.abandon(cause)


__all__ = ["ControlGovernor", "Reconciler"]
