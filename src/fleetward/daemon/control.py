"""Operations control, as the worker and the HTTP API see it: one object over its parts.

`fleetward.decisions` says what a run may write and what is held (pure);
`carriers` which operation carries each held part (pure); `settle` records
that; `admission` runs one operation at a time with its checkpoints; `wakeups`
acts on windows; `requests` serves operators. `Control` wires them over one
log, queue, rejections store, clock and mutex.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fleetward.daemon.admission import Admission, Interrupted
from fleetward.daemon.ports import (
    Clock,
    ControlContext,
    OperationStore,
    RunQueue,
    StoreHistory,
    utc_now,
)
from fleetward.daemon.requests import ControlApi, ConvergeRequest, OperatorRequests
from fleetward.daemon.settle import live_by_policy, rejected, settle
from fleetward.daemon.wakeups import Wakeups
from fleetward.decisions import (
    Decision,
    Part,
    decide,
    describe_held,
    held_summary,
    hold_overruns,
    in_scope,
    with_carriers,
)
from fleetward.model import Plan
from fleetward.operations import SETTABLE_STATES, Operation, OperationState
from fleetward.store import RejectionStore
from fleetward.store.suspension import (
    SuspendFile,
    Suspension,
    Suspensions,
    current_suspension,
)


class Control:
    """Operator requests and held parts, shared by the HTTP threads and the worker.

    `mutex` orders them: the worker holds it from its last checkpoint through
    the write and the settling of held operations, so an operator's cancel or
    approval lands wholly before a write or wholly after it.
    """

    def __init__(
        self,
        log: OperationStore,
        queue: RunQueue,
        state_dir: Path,
        default_timeout: float,
        clock: Clock = utc_now,
        on_change: Callable[[], None] = lambda: None,
        *,
        rejections: RejectionStore,
        suspensions: Suspensions | None = None,
    ) -> None:
        """`log`, `rejections` and `suspensions` are the store's (`Store.operations`,
        `Store.rejections`, the store itself); without `suspensions`, `state_dir`'s
        suspend.json holds the suspension switch (as the state directory's store keeps it)."""
        self.state_dir = Path(state_dir)
        self.suspensions = suspensions if suspensions is not None else SuspendFile(self.state_dir)
        self.ctx = ControlContext(log, queue, rejections, clock, on_change)
        self.admission = Admission(self.ctx, default_timeout)
        self.wakeups = Wakeups(self.ctx, self.admission)
        self.requests = OperatorRequests(self.ctx, self.admission, self.wakeups, self.suspension)
        self.write_seconds = 0.0  # how long the last store write took: overrun estimate

    # -- shared state ----------------------------------------------------------------------

    @property
    def log(self) -> OperationStore:
        return self.ctx.log

    @property
    def queue(self) -> RunQueue:
        return self.ctx.queue

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def mutex(self) -> threading.RLock:
        return self.ctx.mutex

    @property
    def running(self) -> Operation | None:
        """The operation the worker is running."""
        return self.admission.running

    @property
    def default_timeout(self) -> float:
        return self.admission.default_timeout

    @default_timeout.setter
    def default_timeout(self, seconds: float) -> None:
        self.admission.default_timeout = seconds

    def now_iso(self) -> str:
        return self.ctx.now_iso()

    def suspension(self) -> Suspension | None:
        """The daemon-wide suspension (`fleetward suspend`), or None."""
        return current_suspension(self.suspensions)

    # -- operator requests (ControlApi) ----------------------------------------------------

    def create(self, request: ConvergeRequest) -> Operation:
        return self.requests.create(request)

    def set_state(self, operation_id: str, state: OperationState, reason: str) -> Operation:
        return self.requests.set_state(operation_id, state, reason)

    def approve(self, operation_id: str, by: str, comment: str = "") -> Operation:
        return self.requests.approve(operation_id, by, comment)

    def rollback(self, to: str, by: str, store: StoreHistory) -> Operation:
        return self.requests.rollback(to, by, store)

    # -- the worker's side -----------------------------------------------------------------

    def admit(self, op: Operation) -> Operation | None:
        return self.admission.admit(op)

    def begin(self, op: Operation) -> None:
        self.admission.begin(op)

    def deadline_iso(self) -> str | None:
        return self.admission.deadline_iso()

    def checkpoint(self, op: Operation) -> None:
        self.admission.checkpoint(op)

    def end(self) -> None:
        self.admission.end()

    def live_by_policy(self) -> dict[str, Operation]:
        return live_by_policy(self.ctx.log)

    def rejected(self) -> dict[str, str] | None:
        return rejected(self.ctx.rejections)

    def settle(
        self,
        run: Operation,
        plan: Plan,
        decision: Decision,
        written: bool,
        serial: int | None,
    ) -> list[Operation]:
        return settle(self.ctx, run, plan, decision, written, serial)

    # -- wake-ups --------------------------------------------------------------------------

    def next_wake(self) -> datetime | None:
        return self.wakeups.next_wake()

    def wake(self) -> None:
        self.wakeups.wake()


__all__ = [
    "SETTABLE_STATES",
    "Control",
    "ControlApi",
    "ConvergeRequest",
    "Decision",
    "Interrupted",
    "Part",
    "decide",
    "describe_held",
    "held_summary",
    "hold_overruns",
    "in_scope",
    "utc_now",
    "with_carriers",
]
