"""Run admission: whether a taken operation may run now, its deadline, and its checkpoints.

Under the control mutex an operator's PUT either lands before admission (and
the operation is dropped) or sees it running (and it stops at its next
checkpoint, never during its write).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from fleetward.daemon.ports import ControlContext
from fleetward.errors import FleetwardError
from fleetward.operations import Operation, OperationState
from fleetward.runs import Interrupted
from fleetward.timestamps import parse_iso, to_iso

logger = logging.getLogger(__name__)

S = OperationState


class Admission:
    """The operation the worker runs, the stops requested of it, and its deadline."""

    def __init__(self, ctx: ControlContext, default_timeout: float) -> None:
        self.ctx = ctx
        self.default_timeout = default_timeout
        self.running: Operation | None = None  # the operation the worker is running
        self._stops: dict[str, Interrupted] = {}  # operation id → requested stop
        self._deadline: datetime | None = None

    def admit(self, op: Operation) -> Operation | None:
        """Whether a taken operation may run now (it is then the running one); None when
        it ended (recorded) or must keep waiting instead."""
        with self.ctx.mutex:
            admitted = self.admissible(op)
            if admitted is not None:
                self.running = admitted
            return admitted

    def admissible(self, op: Operation) -> Operation | None:
        """The operation as it may run now, or None; ends (TIMEOUT) a WINDOW operation
        whose window closed before it could run."""
        now = self.ctx.clock()
        if op.state.final:
            return None
        try:
            current = self.ctx.log.get(op.operation_id)
        except FleetwardError as exc:
            logger.error("cannot read the operation log: %s", exc)
            current = None  # the run still runs (and reports the damaged log)
        if current is not None:
            if current.state.final:
                return None  # ended by an operator while queued
            if current.state is S.SCHEDULED and "approval" in current.waiting_for:
                return None  # held for approval (PUT SCHEDULED) while queued
            op = current if current.state is S.SCHEDULED else op
        if op.schedule_type == "WINDOW" and op.schedule_args:
            start = parse_iso(str(op.schedule_args["start"]))
            end = parse_iso(str(op.schedule_args["end"]))
            if now >= end:
                with self.ctx.mutex:
                    self.ctx.log.record(
                        op.move(S.TIMEOUT, to_iso(now), "its window closed before it could run")
                    )
                self.ctx.on_change()
                return None
            if now < start:
                return None  # woken early: the wake-up at its start runs it
        return op

    def begin(self, op: Operation) -> None:
        """The worker starts running `op`: its deadline starts now."""
        now = self.ctx.clock()
        timeout = op.arguments.get("timeout") if op.arguments else None
        seconds = float(timeout) if isinstance(timeout, int | float) else self.default_timeout
        deadline = now + timedelta(seconds=seconds)
        if op.schedule_type == "WINDOW" and op.schedule_args.get("end"):
            deadline = min(deadline, parse_iso(str(op.schedule_args["end"])))
        with self.ctx.mutex:
            self.running = op
            self._deadline = deadline

    def deadline_iso(self) -> str | None:
        return to_iso(self._deadline)

    def checkpoint(self, op: Operation) -> None:
        """Raise Interrupted if the operation was asked to stop or is past its deadline."""
        with self.ctx.mutex:
            stop = self._stops.pop(op.operation_id, None)
            if stop is not None:
                raise stop
            if self._deadline is not None and self.ctx.clock() >= self._deadline:
                raise Interrupted(
                    S.TIMEOUT,
                    f"past its deadline {to_iso(self._deadline)}; nothing was written",
                )

    def end(self) -> None:
        with self.ctx.mutex:
            if self.running is not None:
                self._stops.pop(self.running.operation_id, None)
            self.running = None
            self._deadline = None

    def request_stop(self, operation_id: str, stop: Interrupted) -> None:
        """Stop the running operation at its next checkpoint (the caller holds the mutex)."""
        self._stops[operation_id] = stop

    def stop_requested(self, operation_id: str) -> bool:
        return operation_id in self._stops

    def is_running(self, operation_id: str) -> bool:
        running = self.running
        return running is not None and running.operation_id == operation_id

    def pending(self, operation_id: str) -> bool:
        """The operation is queued or running."""
        return self.ctx.queue.find(operation_id) is not None or self.is_running(operation_id)

    def pending_run(self) -> bool:
        """A run is queued or in flight (it will see an open window)."""
        return self.running is not None or self.ctx.queue.find_any()


__all__ = ["Admission", "Interrupted"]
