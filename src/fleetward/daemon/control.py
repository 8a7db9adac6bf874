"""Operations control: what a run may apply now, what waits, and operators' requests.

Every run plans the whole revision. Each change is governed by one SyncPolicy
(or by the daemon's default: at once, no approval; see `governance`). The
changes of one policy form a *part*; a part is written only when nothing holds
it:

- `suspended`: the policy says `suspend: true`, or `fleetward suspend` holds
  the whole daemon;
- `window`: its policy's WINDOW is closed (or would close before the write);
- `approval`: its policy wants manual approval, and the operation carrying
  exactly these changes has not been approved;
- `rejected`: an operator ended the operation that carried exactly these
  changes (PUT .../{id}/ CANCELLED, FAILED or TIMEOUT). The same plan is not
  offered again. Until a person approves a later plan of that policy (or the
  policy has nothing left to change), each new plan of it waits for approval,
  even under `approval: auto`: a rejected change must never slip through with
  an unrelated commit;
- `blocked`: its policy's maxStopFraction guard blocks it (an approval of
  exactly these changes overrides it for a manual policy).

Every part that is not held is written in one atomic store write. A part held
by a window or an approval is carried by an Operation of its own, SCHEDULED
(100), recorded with the part's digest: approval binds to exactly those
changes. When a later run writes the part unchanged, that operation ends
SUCCESS; when the part changes (a newer revision), it ends CANCELLED with the
reason and a new operation carries the new part.

Operator requests arrive over HTTP (and the CLI, which speaks HTTP): create a
convergence (at once or in a window, limited by an `operation_device_query`),
move an operation to FAILURE / CANCELLED / TIMEOUT / SCHEDULED (the seed's
PUT), approve. A running operation is stopped at its next checkpoint, never
during its write.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from fleetward.daemon.suspend import Suspension, read_suspension
from fleetward.errors import FleetwardError, Problem, StoreError
from fleetward.governance import Policy, changes_digest, window_json
from fleetward.kinds.sync_policy import DeviceQuery, WindowState, window_state
from fleetward.model import Change, Plan, action_counts
from fleetward.operations import SETTABLE_STATES, Operation, OperationState, Transition
from fleetward.store.files import write_atomic
from fleetward.timestamps import Clock, parse_iso, to_iso
from fleetward.timestamps import now as utc_now

logger = logging.getLogger("fleetward.daemon")

S = OperationState
_WRITING = frozenset({S.DISPATCHING, S.DISPATCHED, S.PROCESSING, S.COMPLETED})
_CARRY = (S.RESOLVING, S.RESOLVED, S.DISPATCHING, S.DISPATCHED, S.PROCESSING, S.COMPLETED)
_WAIT_FOR_STOP = 5.0  # seconds a PUT waits for a running operation to reach a checkpoint


class ControlError(Exception):
    """A request the daemon refuses: the HTTP status and the problem to show."""

    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(problem.error)
        self.status = status
        self.problem = problem


class Interrupted(Exception):
    """A run stopped at a checkpoint: cancelled, failed or timed out by request or deadline."""

    def __init__(self, state: OperationState, reason: str, by: str | None = None) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason
        self.by = by


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

        Raises ControlError(409) while the daemon is suspended, ControlError(503) when
        the operation log cannot be read or written."""
        ...

    def set_state(self, operation_id: str, state: OperationState, reason: str) -> Operation:
        """The seed's PUT: move an operation to FAILURE, CANCELLED, TIMEOUT or SCHEDULED.

        Raises ControlError(404) for an unknown id, ControlError(409) for a move the
        operation's state does not allow (a final one, or one already writing)."""
        ...

    def approve(self, operation_id: str, by: str, comment: str = "") -> Operation:
        """Approve a SCHEDULED operation that waits for approval; it applies at once
        (or when its window opens). ControlError(404) / ControlError(409) otherwise."""
        ...


# -- what a run may write --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    """The changes of one plan governed by one policy (None: the daemon's default)."""

    policy: str | None
    changes: tuple[Change, ...]
    digest: str
    waiting_for: tuple[str, ...]  # empty: may be written now
    window: WindowState | None = None
    operation_id: str | None = None  # the operation carrying it, once one does


@dataclass(frozen=True, slots=True)
class Decision:
    parts: tuple[Part, ...]
    due: tuple[Change, ...]  # in this run's scope and held by nothing
    out_of_scope: int  # changes the run's operation_device_query leaves alone

    @property
    def held(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.waiting_for)

    def held_count(self) -> int:
        return sum(len(p.changes) for p in self.held)


def decide(
    plan: Plan,
    policies: Mapping[str, Policy],
    now: datetime,
    *,
    query: DeviceQuery | None = None,
    suspended: bool = False,
    live: Mapping[str, Operation] | None = None,
    rejected: Mapping[str, str] | None = MappingProxyType({}),
    blocked: frozenset[str] = frozenset(),
) -> Decision:
    """Split a plan into parts and say which may be written now. Pure.

    `live` maps a policy name to the operation carrying its held part;
    `rejected` maps a policy to the digest of its plan an operator rejected (None:
    unknown, every policy's part is held); `blocked` the
    policies whose own guard (maxStopFraction) blocks their part.
    """
    live = live or {}
    known_rejections = {} if rejected is None else rejected
    grouped: dict[str | None, list[Change]] = {}
    for change in plan.changes:
        grouped.setdefault(change.policy, []).append(change)
    parts: list[Part] = []
    due: list[Change] = []
    out_of_scope = 0
    for name in sorted(grouped, key=lambda n: (n is not None, n or "")):
        changes = tuple(grouped[name])
        # Only a policy's part can be approved or rejected: the default part needs no digest.
        digest = changes_digest(changes) if name is not None else ""
        policy = policies.get(name) if name is not None else None
        waiting: list[str] = []
        window: WindowState | None = None
        if suspended or (policy is not None and policy.spec.suspend):
            waiting.append("suspended")
        if policy is not None and policy.windowed:
            window = window_state(policy.spec.schedule, now)
            if not window.open:
                waiting.append("window")
        carrier = live.get(name) if name is not None else None
        approved = _approved(carrier, digest)
        # None: which plans were rejected is unknown, so every policy's part is held.
        is_rejected = name is not None and (
            rejected is None or known_rejections.get(name) == digest
        )
        after_rejection = name is not None and name in known_rejections
        if is_rejected:
            waiting.append("rejected")
        elif (
            name is not None
            and not approved
            and ((policy is not None and policy.manual) or after_rejection)
        ):
            waiting.append("approval")
        if name is not None and name in blocked and not approved:
            waiting.append("blocked")
        carried_by = carrier.operation_id if carrier is not None else None
        parts.append(Part(name, changes, digest, tuple(waiting), window, carried_by))
        if waiting:
            continue
        for change in changes:
            if query is None or in_scope(query, change):
                due.append(change)
            else:
                out_of_scope += 1
    return Decision(tuple(parts), tuple(due), out_of_scope)


def _approved(op: Operation | None, digest: str) -> bool:
    return (
        op is not None
        and op.plan_digest == digest
        and op.approval is not None
        and bool(op.approval.get("approved_by"))
    )


def in_scope(query: DeviceQuery, change: Change) -> bool:
    """Whether an operation_device_query selects the object a change touches."""
    view = change.after if change.after is not None else change.before
    spec: Mapping[str, Any] = view.spec if view is not None else {}
    raw = spec.get("labels")
    labels = (
        {k: v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, Mapping) else {}
    )
    ident = str(change.address).split("/", 1)[1]
    return query.matches(change.kind, ident, labels, spec)


def hold_overruns(
    decision: Decision, policies: Mapping[str, Policy], until: datetime
) -> tuple[Decision, list[str]]:
    """Hold back the windowed parts whose window will have closed by `until` (now plus
    the expected length of the write): such a write would overrun its window."""
    overrun: list[str] = []
    parts: list[Part] = []
    for part in decision.parts:
        policy = policies.get(part.policy) if part.policy is not None else None
        if part.waiting_for or policy is None or not policy.windowed:
            parts.append(part)
            continue
        later = window_state(policy.spec.schedule, until)
        now_closes = part.window.closes_at if part.window is not None else None
        # Still inside a window at `until`, and it began before the current one closed
        # (the same window, or one overlapping it): the write never leaves a window.
        if later.open and (
            now_closes is None or (later.opens_at is not None and later.opens_at <= now_closes)
        ):
            parts.append(part)
            continue
        overrun.append(part.policy or "")
        parts.append(replace(part, waiting_for=("window",), window=later))
    if not overrun:
        return decision, []
    dropped = {c.address for p in parts if p.policy in overrun for c in p.changes}
    due = tuple(c for c in decision.due if c.address not in dropped)
    return Decision(tuple(parts), due, decision.out_of_scope), overrun


# -- the controller --------------------------------------------------------------------------


class OperationStore(Protocol):
    """The operation log as control uses it (store.operations.OperationLog)."""

    limit: int

    def all(self) -> list[Operation]: ...

    def get(self, operation_id: str) -> Operation | None: ...

    def record(self, *operations: Operation) -> None: ...


class RunQueue(Protocol):
    """The worker's queue (daemon.triggers.Coalescer)."""

    def request(self, reason: str) -> Operation | None: ...

    def push(self, op: Operation) -> bool: ...

    def remove(self, operation_id: str) -> Operation | None: ...

    def find(self, operation_id: str) -> Operation | None: ...

    def find_any(self) -> bool: ...


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
    ) -> None:
        self.log = log
        self.queue = queue
        self.state_dir = Path(state_dir)
        self.default_timeout = default_timeout
        self.clock = clock
        self.on_change = on_change  # the held operations changed: reschedule wake-ups
        self.mutex = threading.RLock()
        self.running: Operation | None = None  # the operation the worker is running
        self._stops: dict[str, Interrupted] = {}  # operation id → requested stop
        self._deadline: datetime | None = None
        self.write_seconds = 0.0  # how long the last store write took: overrun estimate
        self.rejections = Rejections(self.state_dir)

    def now_iso(self) -> str:
        return to_iso(self.clock()) or ""

    # -- operator requests ---------------------------------------------------------------

    def create(self, request: ConvergeRequest) -> Operation:
        with _unavailable_on_store_errors():
            return self._create(request)

    def set_state(self, operation_id: str, state: OperationState, reason: str) -> Operation:
        with _unavailable_on_store_errors():
            return self._set_state(operation_id, state, reason)

    def approve(self, operation_id: str, by: str, comment: str = "") -> Operation:
        with _unavailable_on_store_errors():
            return self._approve(operation_id, by, comment)

    def _create(self, request: ConvergeRequest) -> Operation:
        suspension = self.suspension()
        if suspension is not None:
            raise ControlError(
                409,
                Problem(
                    "The daemon is suspended",
                    f"{suspension.by} suspended it at {suspension.at}"
                    + (f": {suspension.reason}" if suspension.reason else "")
                    + ". A suspended daemon plans but applies nothing.",
                    "Run fleetward resume on the daemon's host, then create the operation.",
                    location="daemon",
                ),
            )
        if request.plain:
            op = self.queue.request("api")
            if op is None:
                raise _stopping()
            return op
        now = self.now_iso()
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
            with self.mutex:
                self.log.record(op)
            self.on_change()
            self.wake()
            return self.log.get(op.operation_id) or op
        with self.mutex:
            self.log.record(op)
            if not self.queue.push(op):
                ended = op.move(S.CANCELLED, now, "the daemon is stopping")
                self.log.record(ended)
                raise _stopping()
        return op

    def _set_state(self, operation_id: str, state: OperationState, reason: str) -> Operation:
        reason = reason.strip()
        with self.mutex:
            op = self._find(operation_id)
            running = self.running is not None and self.running.operation_id == operation_id
            if op.state.final:
                raise _conflict(op, state, f"it already ended {op.state.name}.")
            if state is S.SCHEDULED:
                return self._reschedule(op, running, reason)
            if running:
                if op.state in _WRITING:
                    raise _conflict(
                        op, state, "it is writing the store; a write is never interrupted."
                    )
                self._stops[operation_id] = Interrupted(
                    state, _by_operator(state, reason), "operator"
                )
            else:
                ended = self._end(op, state, _by_operator(state, reason))
                self.queue.remove(operation_id)
                if op.policy is not None and op.plan_digest is not None:
                    self.rejections.add(op.policy, op.plan_digest, ended)
                self.log.record(ended)
                self.on_change()
                return ended
        # The worker stops it at its next checkpoint (before any write): wait a little.
        deadline = time.monotonic() + _WAIT_FOR_STOP
        while time.monotonic() < deadline:
            current = self.log.get(operation_id)
            if current is not None and current.state.final:
                return current
            time.sleep(0.02)
        return self.log.get(operation_id) or op

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
        self.queue.remove(op.operation_id)
        held = replace(
            op,
            waiting_for=("approval",),
            approval={"required": True, "approved_by": None, "approved_at": None},
        ).move(S.SCHEDULED, self.now_iso(), _by_operator(S.SCHEDULED, reason))
        self.log.record(held)
        return held

    def _approve(self, operation_id: str, by: str, comment: str = "") -> Operation:
        with self.mutex:
            op = self._find(operation_id)
            approval = dict(op.approval or {})
            if op.state is not S.SCHEDULED or "approval" not in op.waiting_for:
                why = (
                    f"it was approved by {approval.get('approved_by')} at {approval.get('approved_at')}."
                    if approval.get("approved_by")
                    else f"it is {op.state.name} and waits for no approval."
                )
                raise ControlError(
                    409,
                    Problem(
                        f"Operation {operation_id} is not waiting for approval",
                        f"Only a SCHEDULED operation that waits for approval can be approved; {why}",
                        "List what waits with GET /v0/operations/?state=100.",
                        location=f"operation {operation_id}",
                        parameters={"operationId": operation_id, "state": op.state.name},
                    ),
                )
            now = self.now_iso()
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
            self.log.record(approved)
        window = approved.window or {}
        opens, closes = _instant(window.get("opens_at")), _instant(window.get("closes_at"))
        now_at = self.clock()
        window_open = opens is not None and opens <= now_at and (closes is None or now_at < closes)
        if not waiting:
            if approved.policy is None:
                self.queue.push(approved)  # an operator's own operation: run it as itself
            else:
                self.queue.request("approval")  # the next run writes the approved part
        elif waiting == ("window",) and window_open and approved.policy is not None:
            self.queue.request("approval")  # its window is open already: no need to wait
        self.on_change()
        return approved

    def _find(self, operation_id: str) -> Operation:
        # The log's record wins over a queued copy, which may be stale.
        op = self.log.get(operation_id) or self.queue.find(operation_id)
        if op is None and self.running is not None and self.running.operation_id == operation_id:
            op = self.running
        if op is None:
            raise ControlError(
                404,
                Problem(
                    "Operation not found",
                    f"No operation {operation_id!r} is queued or kept (the log keeps the most "
                    f"recent {self.log.limit}).",
                    "List operations with GET /v0/operations/.",
                    location="path.operationId",
                    parameters={"operationId": operation_id},
                ),
            )
        return op

    def _end(self, op: Operation, state: OperationState, message: str) -> Operation:
        return replace(op.move(state, self.now_iso(), message), ended_by="operator")

    # -- the worker's side ----------------------------------------------------------------

    def suspension(self) -> Suspension | None:
        """The daemon-wide suspension (`fleetward suspend`), or None."""
        try:
            return read_suspension(self.state_dir)
        except FleetwardError as exc:
            # A damaged file must not unsuspend: treat it as suspended, loudly.
            logger.error("cannot read the suspension file: %s", exc)
            return UNREADABLE

    def admit(self, op: Operation) -> Operation | None:
        """Whether a taken operation may run now (it is then the running one); None when
        it ended (recorded) or must keep waiting instead.

        Under the mutex: an operator's PUT either lands before (and the operation is
        dropped here) or sees it running (and stops it at its first checkpoint)."""
        with self.mutex:
            admitted = self._admissible(op)
            if admitted is not None:
                self.running = admitted
            return admitted

    def _admissible(self, op: Operation) -> Operation | None:
        now = self.clock()
        if op.state.final:
            return None
        try:
            current = self.log.get(op.operation_id)
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
                with self.mutex:
                    self.log.record(
                        op.move(S.TIMEOUT, to_iso(now), "its window closed before it could run")
                    )
                self.on_change()
                return None
            if now < start:
                return None  # woken early: the wake-up at its start runs it
        return op

    def begin(self, op: Operation) -> None:
        """The worker starts running `op`: its deadline starts now."""
        now = self.clock()
        timeout = op.arguments.get("timeout") if op.arguments else None
        seconds = float(timeout) if isinstance(timeout, int | float) else self.default_timeout
        deadline = now + timedelta(seconds=seconds)
        if op.schedule_type == "WINDOW" and op.schedule_args.get("end"):
            deadline = min(deadline, parse_iso(str(op.schedule_args["end"])))
        with self.mutex:
            self.running = op
            self._deadline = deadline

    def deadline_iso(self) -> str | None:
        return to_iso(self._deadline)

    def checkpoint(self, op: Operation) -> None:
        """Raise Interrupted if the operation was asked to stop or is past its deadline."""
        with self.mutex:
            stop = self._stops.pop(op.operation_id, None)
            if stop is not None:
                raise stop
            if self._deadline is not None and self.clock() >= self._deadline:
                raise Interrupted(
                    S.TIMEOUT,
                    f"past its deadline {to_iso(self._deadline)}; nothing was written",
                )

    def end(self) -> None:
        with self.mutex:
            if self.running is not None:
                self._stops.pop(self.running.operation_id, None)
            self.running = None
            self._deadline = None

    def live_by_policy(self) -> dict[str, Operation]:
        """The operation carrying each policy's held part (the newest, if several)."""
        out: dict[str, Operation] = {}
        for op in self._kept():
            if op.policy is not None and not op.state.final:
                out[op.policy] = op
        return out

    def rejected(self) -> dict[str, str] | None:
        """Per policy, the digest of its plan an operator rejected; None if unknown (the
        file is unreadable: every policy's part is then held, never applied by mistake)."""
        found = self.rejections.read()
        if found is None:
            return None
        return {policy: str(entry.get("digest")) for policy, entry in found.items()}

    def _kept(self) -> list[Operation]:
        """The operation log, or nothing if it cannot be read: a damaged log must not stop
        reconciling (approvals it held are lost with it, so those parts stay held)."""
        try:
            return self.log.all()
        except FleetwardError as exc:
            logger.error("cannot read the operation log: %s", exc)
            return []

    def settle(
        self,
        run: Operation,
        plan: Plan,
        decision: Decision,
        written: bool,
        serial: int | None,
    ) -> list[Operation]:
        """After a run: end, keep or create the operations carrying held parts.

        The caller holds `mutex`. Returns every operation recorded."""
        now = self.now_iso()
        live = self.live_by_policy()
        done = {c.address for c in decision.due} if written else set()
        recorded: list[Operation] = []
        seen: set[str] = set()
        lifted: set[str] = set()
        # A rejection lasts until a later plan of the policy is approved, or the policy
        # has nothing left to change.
        try:
            self.rejections.keep({p.policy for p in decision.parts if p.policy is not None})
        except FleetwardError as exc:
            logger.error("cannot update the rejected plans: %s", exc)
        for part in decision.parts:
            if part.policy is None:
                continue
            seen.add(part.policy)
            carrier = live.get(part.policy)
            if carrier is not None and carrier.operation_id == run.operation_id:
                carrier = None  # the run's own operation ends with the run
            remaining = tuple(c for c in part.changes if c.address not in done)
            if not remaining:
                if carrier is not None:
                    if carrier.plan_digest == part.digest:
                        if carrier.approval is not None and carrier.approval.get("approved_by"):
                            # A person approved a later plan and it is applied: the
                            # policy's earlier rejection has been answered.
                            lifted.add(part.policy)
                        ended = carrier.through(_CARRY, now).move(
                            S.SUCCESS,
                            now,
                            f"applied by operation {run.operation_id} at serial {serial}",
                        )
                        recorded.append(replace(ended, serial=serial, waiting_for=()))
                    else:
                        recorded.append(
                            carrier.move(
                                S.CANCELLED,
                                now,
                                f"superseded: revision {plan.revision.short} changed the "
                                f"policy's changes, and operation {run.operation_id} applied them",
                            )
                        )
                continue
            digest = (
                changes_digest(remaining) if len(remaining) != len(part.changes) else part.digest
            )
            waits = set(part.waiting_for)
            # Something a person or the clock can release; a blocked part only if an
            # approval (of a manual policy) may override its guard.
            wants_carrier = (
                bool({"window", "approval"} & waits)
                and "rejected" not in waits
                and ("blocked" not in waits or "approval" in waits)
            )
            if carrier is not None and carrier.plan_digest == digest:
                updated = _refresh(carrier, part, now)
                if updated is not carrier:
                    recorded.append(updated)
                continue
            if carrier is not None and carrier.plan_digest == part.digest:
                # A query-limited run wrote some of exactly the changes it carries: the
                # rest stays with it, approval included.
                message = (
                    f"partly applied by operation {run.operation_id} at serial {serial}; "
                    f"{len(remaining)} change(s) remain"
                )
                recorded.append(
                    replace(
                        _refresh(carrier, part, now),
                        plan_digest=digest,
                        plan_summary=action_counts(remaining),
                        updated_at=now,
                        transitions=(*carrier.transitions, Transition(S.SCHEDULED, now, message)),
                        message=message,
                    )
                )
                continue
            new = (
                self._held_operation(part, remaining, digest, plan, now) if wants_carrier else None
            )
            if carrier is not None:
                tail = f"; operation {new.operation_id} carries the new plan" if new else ""
                recorded.append(
                    carrier.move(
                        S.CANCELLED,
                        now,
                        f"superseded by revision {plan.revision.short}: the policy's changes "
                        f"differ from the ones this operation carried{tail}",
                    )
                )
            if new is not None:
                recorded.append(new)
        for name, carrier in live.items():
            if name in seen or carrier.operation_id == run.operation_id:
                continue
            recorded.append(
                carrier.move(
                    S.CANCELLED,
                    now,
                    f"superseded: at revision {plan.revision.short} the store already matches "
                    f"what policy {name} governs (a commit reverted the changes, or a "
                    "fleetward apply wrote them)",
                )
            )
        for policy_name in lifted:
            try:
                self.rejections.lift(policy_name)
            except FleetwardError as exc:
                logger.error("cannot update the rejected plans: %s", exc)
        if recorded:
            try:
                self.log.record(*recorded)
            except FleetwardError as exc:
                # Like the run's own record: the log is a record of the work, not the work.
                logger.error("cannot record held operations: %s", exc)
                return []
            self.on_change()
        return recorded

    def _held_operation(
        self, part: Part, changes: tuple[Change, ...], digest: str, plan: Plan, now: str
    ) -> Operation:
        summary = action_counts(changes)
        op = replace(
            Operation.new("policy", now),
            policy=part.policy,
            schedule_type="WINDOW" if part.window is not None else "IMMEDIATE",
            plan_digest=digest,
            plan_summary=summary,
            revision=plan.revision.id,
            ref=plan.revision.ref,
            approval=(
                {"required": True, "approved_by": None, "approved_at": None}
                if "approval" in part.waiting_for
                else None
            ),
        )
        op = op.through((S.RESOLVING, S.RESOLVED), now)
        return _refresh(op.move(S.SCHEDULED, now, _waiting_message(part)), part, now)

    # -- wake-ups --------------------------------------------------------------------------

    def next_wake(self) -> datetime | None:
        """When a held operation's window opens, an operator's window ends, or (now) an
        operator's operation is due but neither queued nor running (after a restart)."""
        now = self.clock()
        times: list[datetime] = []
        for op in self.log.all():
            if op.state is not S.SCHEDULED or "approval" in op.waiting_for:
                continue  # approval first: approving wakes it
            window = op.window or {}
            opens = _instant(window.get("opens_at"))
            closes = _instant(window.get("closes_at"))
            if op.policy is not None:
                if opens is not None and opens > now:
                    times.append(opens)
                elif (
                    op.waiting_for == ("window",)
                    and opens is not None
                    and closes is not None
                    and closes > now
                ):
                    # Held for its window while the window is open (a write held as an
                    # overrun into the window that followed): a run now, not at the poll.
                    times.append(now if not self._pending_run() else closes)
                continue
            if opens is not None and opens > now:
                times.append(opens)
            elif self._pending(op.operation_id):
                if closes is not None and closes > now:
                    times.append(closes)  # to end it if it never gets to run
                # Past its end while queued: the worker ends it (TIMEOUT) when it takes it.
            else:
                times.append(now)  # due (or past its end) and not queued: wake now
        return min(times) if times else None

    def _pending_run(self) -> bool:
        """A run is queued or in flight (it will see the open window)."""
        return self.running is not None or self.queue.find_any()

    def _pending(self, operation_id: str) -> bool:
        running = self.running
        return self.queue.find(operation_id) is not None or (
            running is not None and running.operation_id == operation_id
        )

    def wake(self) -> None:
        """At a wake-up: queue operators' operations that are due (their window opened,
        or they were approved or left over by a restart), end the ones whose window
        closed, and ask for a run where a policy's window opened."""
        now = self.clock()
        want_run = False
        for op in self.log.all():
            if op.state is not S.SCHEDULED or "approval" in op.waiting_for:
                continue
            opens = _instant((op.window or {}).get("opens_at"))
            if opens is not None and opens > now:
                continue
            if op.policy is not None:
                want_run = want_run or opens is not None
            elif not self._pending(op.operation_id) and self._admissible(op) is not None:
                self.queue.push(op)
        if want_run:
            self.queue.request("window")
        self.on_change()


def _instant(raw: Any) -> datetime | None:
    return parse_iso(str(raw)) if raw else None


@contextmanager
def _unavailable_on_store_errors() -> Iterator[None]:
    """A damaged or unwritable operation log is the daemon's problem, not the request's:
    503 with what is wrong, never a 500."""
    try:
        yield
    except FleetwardError as exc:
        problem = exc.problems[0] if exc.problems else Problem(str(exc), "", "")
        raise ControlError(503, problem) from exc


REJECTIONS_FILE = "rejections.json"


class Rejections:
    """`<state-dir>/rejections.json`: per policy, the plan (digest) an operator rejected.

    Kept apart from the operation log, which is bounded and may be damaged: a
    rejection must outlive the eviction of its operation, and an unreadable
    record must hold the policies' parts, not release them."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / REJECTIONS_FILE

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            logger.error("cannot read %s: %s; every policy's changes are held", self.path, exc)
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not an object of objects")
            return data
        except ValueError as exc:
            logger.error(
                "%s is damaged (%s); every policy's changes are held until it is fixed or "
                "removed (removing it forgets the rejected plans)",
                self.path,
                exc,
            )
            return None

    def add(self, policy: str, digest: str, op: Operation) -> None:
        found = self.read()
        if found is None:
            # Writing now would drop the other rejections the file holds.
            raise ControlError(
                503,
                Problem(
                    f"Cannot record the rejection: {self.path} is damaged",
                    "The file lists the plans operators rejected; rewriting it now would "
                    "forget them. While it is damaged, every policy's changes are held.",
                    f"Fix or remove {self.path} (removing it forgets the rejected plans), "
                    "then retry.",
                    location=str(self.path),
                ),
            )
        found[policy] = {
            "digest": digest,
            "operationId": op.operation_id,
            "state": op.state.name,
            "at": op.updated_at,
        }
        self._write(found)

    def keep(self, policies: set[str]) -> None:
        """Drop the rejections of policies that have nothing left to change."""
        found = self.read()
        if not found:
            return
        kept = {p: e for p, e in found.items() if p in policies}
        if kept != found:
            self._write(kept)

    def lift(self, policy: str) -> None:
        """A person approved a later plan of the policy: its rejection is over."""
        found = self.read()
        if found and policy in found:
            self._write({p: e for p, e in found.items() if p != policy})

    def _write(self, data: Mapping[str, Any]) -> None:
        try:
            write_atomic(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise StoreError.one(
                f"Cannot write {self.path}",
                f"{exc.strerror or exc}.",
                "Make the state directory writable.",
                location=str(self.path),
            ) from exc


UNREADABLE = Suspension(
    "an unreadable suspend.json", "unknown", "the file could not be read; fix or remove it"
)


def _refresh(op: Operation, part: Part, now: str) -> Operation:
    """The held operation with what it now waits for and its window."""
    waiting = tuple(part.waiting_for)
    if op.approval is not None and op.approval.get("approved_by"):
        waiting = tuple(w for w in waiting if w != "approval")
    window = (
        {"opens_at": to_iso(part.window.opens_at), "closes_at": to_iso(part.window.closes_at)}
        if part.window is not None
        else None
    )
    if waiting == op.waiting_for and window == (dict(op.window) if op.window else None):
        return op
    return replace(
        op, waiting_for=waiting, window=window, updated_at=now, message=_waiting_message(part)
    )


def _waiting_message(part: Part) -> str:
    reasons = []
    if "suspended" in part.waiting_for:
        reasons.append("its policy is suspended")
    if "window" in part.waiting_for and part.window is not None:
        opens = to_iso(part.window.opens_at)
        reasons.append(
            f"waiting for its window opening at {opens}"
            if opens
            else "its window never opens again"
        )
    if "approval" in part.waiting_for:
        reasons.append("waiting for approval")
    if "blocked" in part.waiting_for:
        reasons.append("blocked by its policy's maxStopFraction guard")
    if "rejected" in part.waiting_for:
        reasons.append("an operator rejected this plan")
    return "; ".join(reasons) or "ready to apply"


def _by_operator(state: OperationState, reason: str) -> str:
    verb = {S.CANCELLED: "cancelled", S.FAILURE: "failed", S.TIMEOUT: "timed out"}.get(
        state, "held for approval"
    )
    return f"{verb} by an operator" + (f": {reason}" if reason else "")


def _conflict(op: Operation, wanted: OperationState, why: str) -> ControlError:
    return ControlError(
        409,
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
        ),
    )


def _stopping() -> ControlError:
    return ControlError(
        503,
        Problem(
            "The daemon is stopping",
            "No new operations are accepted while it shuts down.",
            "Retry against the restarted daemon.",
        ),
    )


def with_carriers(decision: Decision, live: Mapping[str, Operation]) -> Decision:
    """The decision with each held part's carrying operation as it is now recorded."""
    parts = tuple(
        replace(p, operation_id=live[p.policy].operation_id)
        if p.policy is not None and p.policy in live
        else replace(p, operation_id=None)
        for p in decision.parts
    )
    return replace(decision, parts=parts)


def held_summary(decision: Decision) -> list[dict[str, Any]]:
    """The held parts as status files and logs show them."""
    out = []
    for part in decision.held:
        out.append(
            {
                "policy": part.policy,
                "waitingFor": list(part.waiting_for),
                "changes": len(part.changes),
                "operationId": part.operation_id,
                **({"window": window_json(part.window)} if part.window is not None else {}),
            }
        )
    return out


def describe_held(decision: Decision) -> str:
    bits = []
    for part in decision.held:
        who = f"policy {part.policy}" if part.policy else "default"
        bits.append(f"{len(part.changes)} held ({who}: {', '.join(part.waiting_for)})")
    return "; ".join(bits)


__all__ = [
    "SETTABLE_STATES",
    "Control",
    "ControlApi",
    "ControlError",
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
