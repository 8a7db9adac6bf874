"""Operators' requests: create a convergence, move an operation's state, approve one.

They arrive over HTTP (and the CLI, which speaks HTTP). Refusals are
`RequestRefused` errors (errors.py); the HTTP layer gives them their status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from fleetward.daemon.admission import Admission, Interrupted
from fleetward.daemon.ports import ControlContext, StoreHistory
from fleetward.daemon.wakeups import Wakeups, instant
from fleetward.errors import (
    FleetwardError,
    OperationConflict,
    OperationNotFound,
    Problem,
    RequestRefused,
    Unavailable,
)
from fleetward.operations import Operation, OperationState, Transition
from fleetward.rollback import is_rollback, rollback_operation, rollback_point
from fleetward.store.suspension import Suspension

S = OperationState
_WRITING = frozenset({S.DISPATCHING, S.DISPATCHED, S.PROCESSING, S.COMPLETED})
_WAIT_FOR_STOP = 5.0  # seconds a PUT waits for a running operation to reach a checkpoint


@dataclass(frozen=True, slots=True)
class ConvergeRequest:
    """A validated request to converge (POST /v0/operations/, `operations create`)."""

    schedule_type: str = "IMMEDIATE"  # IMMEDIATE | WINDOW
    window_start: str | None = None  # ISO 8601 UTC ("...Z"); WINDOW only
    window_end: str | None = None
    # The operation_device_query as sent (validated); empty: every object.
    query: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    allow_mass_stop: bool = False
    timeout: float | None = None  # seconds; None: the daemon's --operation-timeout

    @property
    def plain(self) -> bool:
        """Nothing that makes it a run of its own: it joins the queued run."""
        return (
            self.schedule_type == "IMMEDIATE"
            and not self.query
            and not self.dry_run
            and not self.allow_mass_stop
            and self.timeout is None
        )


class ControlApi(Protocol):
    """What the HTTP API needs from operations control."""

    def create(self, request: ConvergeRequest) -> Operation:
        """Record a new operation (queued if IMMEDIATE, SCHEDULED if WINDOW) and return it.

        OperationConflict while the daemon is suspended; Unavailable when the
        operation log cannot be read or written, or the daemon is stopping."""
        ...

    def set_state(self, operation_id: str, state: OperationState, reason: str) -> Operation:
        """The seed's PUT: move an operation to FAILURE, CANCELLED, TIMEOUT or SCHEDULED.

        OperationNotFound for an unknown id, OperationConflict for a move the
        operation's state does not allow (a final one, or one already writing)."""
        ...

    def approve(self, operation_id: str, by: str, comment: str = "") -> Operation:
        """Approve a SCHEDULED operation that waits for approval; it applies at once
        (or when its window opens). OperationNotFound / OperationConflict otherwise."""
        ...

    def rollback(self, to: str, by: str, store: StoreHistory) -> Operation:
        """Queue a rollback to the apply `to` names in `store`'s history (trigger
        "rollback"): its run applies that revision and pins the store to it. UsageError
        when the history keeps no such apply or the store is at it (`rollback_point`);
        OperationConflict while suspended; Unavailable as create, and when the store
        cannot be read."""
        ...


class OperatorRequests:
    """The requests, against the log, the queue and the running operation."""

    def __init__(
        self,
        ctx: ControlContext,
        admission: Admission,
        wakeups: Wakeups,
        suspension: Callable[[], Suspension | None],
    ) -> None:
        self.ctx = ctx
        self.admission = admission
        self.wakeups = wakeups
        self.suspension = suspension

    def create(self, request: ConvergeRequest) -> Operation:
        with _unavailable_on_store_errors():
            return self._create(request)

    def set_state(self, operation_id: str, state: OperationState, reason: str) -> Operation:
        with _unavailable_on_store_errors():
            return self._set_state(operation_id, state, reason)

    def approve(self, operation_id: str, by: str, comment: str = "") -> Operation:
        with _unavailable_on_store_errors():
            return self._approve(operation_id, by, comment)

    def rollback(self, to: str, by: str, store: StoreHistory) -> Operation:
        with _unavailable_on_store_errors():
            history, current = store.history(), store.meta().last_applied_revision
        point = rollback_point(history, to, current)  # its refusals are the request's
        with _unavailable_on_store_errors():
            self._refuse_suspended()
            ctx = self.ctx
            now = ctx.now_iso()
            op = rollback_operation(point, by, now)
            with ctx.mutex:
                ctx.log.record(op)
                if not ctx.queue.push(op):
                    ctx.log.record(op.move(S.CANCELLED, now, "the daemon is stopping"))
                    raise _stopping()
            return op

    def _refuse_suspended(self) -> None:
        suspension = self.suspension()
        if suspension is not None:
            raise OperationConflict.one(
                "The daemon is suspended",
                f"{suspension.by} suspended it at {suspension.at}"
                + (f": {suspension.reason}" if suspension.reason else "")
                + ". A suspended daemon plans but applies nothing.",
                "Run fleetward resume on the daemon's host, then create the operation.",
                location="daemon",
            )

    def _create(self, request: ConvergeRequest) -> Operation:
        ctx = self.ctx
        self._refuse_suspended()
        if request.plain:
            op = ctx.queue.request("api")
            if op is None:
                raise _stopping()
            return op
        now = ctx.now_iso()
        arguments: dict[str, Any] = {}
        if request.dry_run:
            arguments["dryRun"] = True
        if request.allow_mass_stop:
            arguments["allowMassStop"] = True
        if request.timeout is not None:
            arguments["timeout"] = request.timeout
        op = replace(
            Operation.new("api", now),
            schedule_type=request.schedule_type,
            operation_device_query=dict(request.query),
            arguments=arguments,
        )
        if request.schedule_type == "WINDOW":
            assert request.window_start is not None and request.window_end is not None
            op = replace(
                op,
                schedule_args={"start": request.window_start, "end": request.window_end},
                window={"opens_at": request.window_start, "closes_at": request.window_end},
                waiting_for=("window",),
                deadline=request.window_end,
            ).move(S.SCHEDULED, now, f"waiting for its window at {request.window_start}")
            with ctx.mutex:
                ctx.log.record(op)
            ctx.on_change()
            self.wakeups.wake()
            return ctx.log.get(op.operation_id) or op
        with ctx.mutex:
            ctx.log.record(op)
            if not ctx.queue.push(op):
                ended = op.move(S.CANCELLED, now, "the daemon is stopping")
                ctx.log.record(ended)
                raise _stopping()
        return op

    def _set_state(self, operation_id: str, state: OperationState, reason: str) -> Operation:
        ctx = self.ctx
        reason = reason.strip()
        with ctx.mutex:
            op = self._find(operation_id)
            running = self.admission.is_running(operation_id)
            if op.state.final:
                raise _conflict(op, state, f"it already ended {op.state.name}.")
            if state is S.SCHEDULED:
                return self._reschedule(op, running, reason)
            if running:
                if op.state in _WRITING:
                    raise _conflict(
                        op, state, "it is writing the store; a write is never interrupted."
                    )
                self.admission.request_stop(
                    operation_id, Interrupted(state, _by_operator(state, reason), "operator")
                )
            else:
                ended = replace(
                    op.move(state, ctx.now_iso(), _by_operator(state, reason)),
                    ended_by="operator",
                )
                ctx.queue.remove(operation_id)
                if op.policy is not None and op.plan_digest is not None:
                    ctx.rejections.add(op.policy, op.plan_digest, ended)
                ctx.log.record(ended)
                ctx.on_change()
                return ended
        # The worker stops it at its next checkpoint (before any write): wait a little.
        deadline = time.monotonic() + _WAIT_FOR_STOP
        while time.monotonic() < deadline:
            current = ctx.log.get(operation_id)
            if current is not None and current.state.final:
                return current
            time.sleep(0.02)
        return ctx.log.get(operation_id) or op

    def _reschedule(self, op: Operation, running: bool, reason: str) -> Operation:
        """PUT SCHEDULED: a queued operation is held until approved."""
        if running or op.state is not S.CREATED:
            why = (
                "it is running."
                if running
                else "it is already SCHEDULED."
                if op.state is S.SCHEDULED
                else f"it is {op.state.name}."
            )
            raise _conflict(
                op,
                S.SCHEDULED,
                f"only a queued (CREATED) operation can be held for approval, and {why}",
            )
        if (
            op.policy is None
            and not op.operation_device_query
            and not op.arguments
            and op.schedule_type == "IMMEDIATE"
        ):
            raise _conflict(
                op,
                S.SCHEDULED,
                "it is the daemon's own convergence (a poll, watch or webhook run, or a plain "
                "request): holding it would not hold anything, the next poll converges anyway. "
                "To hold changes, run fleetward suspend, or give a SyncPolicy approval: manual.",
            )
        self.ctx.queue.remove(op.operation_id)
        held = replace(
            op,
            waiting_for=("approval",),
            approval={"required": True, "approved_by": None, "approved_at": None},
        ).move(S.SCHEDULED, self.ctx.now_iso(), _by_operator(S.SCHEDULED, reason))
        self.ctx.log.record(held)
        return held

    def _approve(self, operation_id: str, by: str, comment: str = "") -> Operation:
        ctx = self.ctx
        with ctx.mutex:
            op = self._find(operation_id)
            approval = dict(op.approval or {})
            if op.state is not S.SCHEDULED or "approval" not in op.waiting_for:
                why = (
                    f"it was approved by {approval.get('approved_by')} at {approval.get('approved_at')}."
                    if approval.get("approved_by")
                    else f"it is {op.state.name} and waits for no approval."
                )
                raise OperationConflict.one(
                    f"Operation {operation_id} is not waiting for approval",
                    f"Only a SCHEDULED operation that waits for approval can be approved; {why}",
                    "List what waits with GET /v0/operations/?state=100.",
                    location=f"operation {operation_id}",
                    operationId=operation_id,
                    state=op.state.name,
                )
            now = ctx.now_iso()
            approval.update(required=True, approved_by=by, approved_at=now)
            if comment:
                approval["comment"] = comment
            # An approval of exactly these changes also lifts their policy's guard.
            waiting = tuple(w for w in op.waiting_for if w not in ("approval", "blocked"))
            message = f"approved by {by}" + (
                "; waiting for its window" if "window" in waiting else ""
            )
            approved = replace(
                op,
                approval=approval,
                waiting_for=waiting,
                updated_at=now,
                transitions=(*op.transitions, Transition(S.SCHEDULED, now, message)),
                message=message,
            )
            ctx.log.record(approved)
        window = approved.window or {}
        opens, closes = instant(window.get("opens_at")), instant(window.get("closes_at"))
        now_at = ctx.clock()
        window_open = opens is not None and opens <= now_at and (closes is None or now_at < closes)
        # An operator's own operation runs as itself, and so does one carrying a part a
        # rollback held (it rolls back, pinned); otherwise the next run writes the part.
        as_itself = approved.policy is None or is_rollback(approved)
        if not waiting:
            if as_itself:
                ctx.queue.push(approved)
            else:
                ctx.queue.request("approval")
        elif waiting == ("window",) and window_open and approved.policy is not None:
            if as_itself:
                ctx.queue.push(approved)  # its window is open already: no need to wait
            else:
                ctx.queue.request("approval")
        ctx.on_change()
        return approved

    def _find(self, operation_id: str) -> Operation:
        # The log's record wins over a queued copy, which may be stale.
        op = self.ctx.log.get(operation_id) or self.ctx.queue.find(operation_id)
        if op is None and self.admission.is_running(operation_id):
            op = self.admission.running
        if op is None:
            raise OperationNotFound.one(
                "Operation not found",
                f"No operation {operation_id!r} is queued or kept (the log keeps the most "
                f"recent {self.ctx.log.limit}).",
                "List operations with GET /v0/operations/.",
                location="path.operationId",
                operationId=operation_id,
            )
        return op


@contextmanager
def _unavailable_on_store_errors() -> Iterator[None]:
    """A damaged or unwritable operation log (or rejections file) is the daemon's
    problem, not the request's: Unavailable with what is wrong, never an internal error."""
    try:
        yield
    except RequestRefused:
        raise
    except FleetwardError as exc:
        raise Unavailable(*exc.problems) from exc


def _by_operator(state: OperationState, reason: str) -> str:
    verb = {S.CANCELLED: "cancelled", S.FAILURE: "failed", S.TIMEOUT: "timed out"}.get(
        state, "held for approval"
    )
    return f"{verb} by an operator" + (f": {reason}" if reason else "")


def _conflict(op: Operation, wanted: OperationState, why: str) -> OperationConflict:
    return OperationConflict(
        Problem(
            f"Operation {op.operation_id} cannot move from {op.state.name} to {wanted.name}",
            f"The operation is {op.state.name}: {why}",
            "Only a queued (CREATED), SCHEDULED or not yet writing operation can be moved; "
            "see the allowed moves in GET /openapi.json.",
            location=f"operation {op.operation_id}",
            parameters={
                "operationId": op.operation_id,
                "state": op.state.name,
                "requested": wanted.name,
            },
        )
    )


def _stopping() -> Unavailable:
    return Unavailable.one(
        "The daemon is stopping",
        "No new operations are accepted while it shuts down.",
        "Retry against the restarted daemon.",
    )


__all__ = ["ControlApi", "ConvergeRequest", "OperatorRequests"]
