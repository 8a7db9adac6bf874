"""Operations: every reconcile as a record with the operations seed's states and codes.

An Operation moves CREATED → RESOLVING (fetch, load, desire, plan) → RESOLVED
(plan ready) → DISPATCHING → DISPATCHED → PROCESSING → COMPLETED (the apply)
→ SUCCESS, or ends in FAILURE, CANCELLED or TIMEOUT. Every transition is
timestamped. Pure: persistence is the store's (`store/operations.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from fleetward.errors import Problem

OPERATION_TYPE = "CONVERGE"
MAX_ERRORS_KEPT = 100  # per operation; the count says how many there were


class OperationState(IntEnum):
    """The seed's operation states and their integer codes."""

    CREATED = 10
    RESOLVING = 20
    RESOLVED = 30
    DISPATCHING = 40
    DISPATCHED = 50
    PROCESSING = 60
    COMPLETED = 70
    SUCCESS = 80
    FAILURE = 90
    SCHEDULED = 100
    CANCELLED = 110
    TIMEOUT = 120

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @classmethod
    def parse(cls, value: str | int) -> OperationState:
        """A state from its name (`SUCCESS`, `OPERATION_SUCCESS`) or its code (`80`)."""
        text = str(value).strip().upper().removeprefix("OPERATION_")
        if text.isdigit():
            return cls(int(text))
        return cls[text]


FINAL_STATES = frozenset(
    {
        OperationState.SUCCESS,
        OperationState.FAILURE,
        OperationState.CANCELLED,
        OperationState.TIMEOUT,
    }
)

_S = OperationState
# Forward moves of a run; any non-final state may also end in FAILURE, CANCELLED or TIMEOUT.
_NEXT: Mapping[OperationState, frozenset[OperationState]] = {
    _S.CREATED: frozenset({_S.RESOLVING, _S.SCHEDULED}),
    _S.SCHEDULED: frozenset({_S.RESOLVING, _S.DISPATCHING}),
    _S.RESOLVING: frozenset({_S.RESOLVED}),
    # A plan with nothing to write is done once it is resolved.
    _S.RESOLVED: frozenset({_S.DISPATCHING, _S.SCHEDULED, _S.SUCCESS}),
    _S.DISPATCHING: frozenset({_S.DISPATCHED}),
    _S.DISPATCHED: frozenset({_S.PROCESSING}),
    _S.PROCESSING: frozenset({_S.COMPLETED}),
    _S.COMPLETED: frozenset({_S.SUCCESS}),
}
_ENDINGS = frozenset({_S.FAILURE, _S.CANCELLED, _S.TIMEOUT})


class IllegalTransition(ValueError):
    def __init__(self, current: OperationState, wanted: OperationState) -> None:
        super().__init__(f"an operation in state {current.name} cannot move to {wanted.name}")
        self.current = current
        self.wanted = wanted


def can_move(current: OperationState, wanted: OperationState) -> bool:
    if current.final:
        return False
    return wanted in _NEXT.get(current, frozenset()) or wanted in _ENDINGS


@dataclass(frozen=True, slots=True)
class Transition:
    state: OperationState
    at: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    operation_id: str
    trigger: str  # poll | watch | webhook | startup | retry | api | cli
    created_at: str
    state: OperationState = OperationState.CREATED
    updated_at: str = ""
    operation_type: str = OPERATION_TYPE
    schedule_type: str = "IMMEDIATE"
    operation_device_query: Mapping[str, Any] = field(default_factory=dict)
    transitions: tuple[Transition, ...] = ()
    revision: str | None = None  # the source revision the run resolved
    ref: str | None = None
    plan_summary: Mapping[str, int] | None = None
    serial: int | None = None  # the store serial after the apply (or as found, with no changes)
    errors: tuple[Mapping[str, Any], ...] = ()
    error_count: int = 0
    message: str = ""  # why it ended as it did, in one sentence
    # -- control (sync policies and operator requests) -----------------------------------
    # The seed's window of a WINDOW operation: {"start": iso, "end": iso}.
    schedule_args: Mapping[str, Any] = field(default_factory=dict)
    # Request arguments: dryRun, allowMassStop, timeout (seconds).
    arguments: Mapping[str, Any] = field(default_factory=dict)
    # The SyncPolicy whose held changes this operation carries (None: a run of its own).
    policy: str | None = None
    # What a SCHEDULED operation waits for: "window" and/or "approval".
    waiting_for: tuple[str, ...] = ()
    # The window it waits for or runs in: {"opens_at": iso, "closes_at": iso}.
    window: Mapping[str, Any] | None = None
    # Manual approval: {"required": true, "approved_by": str|None, "approved_at": iso|None}.
    approval: Mapping[str, Any] | None = None
    # Past this instant the operation ends TIMEOUT without writing (iso; None: no deadline).
    deadline: str | None = None
    # Digest of the changes a held operation carries: approval binds to exactly these.
    plan_digest: str | None = None
    # "operator" when ended by PUT /v0/operations/{id}/ (a rejected plan is not offered again).
    ended_by: str | None = None

    @classmethod
    def new(cls, trigger: str, now: str) -> Operation:
        return cls(
            operation_id=str(uuid.uuid4()),
            trigger=trigger,
            created_at=now,
            updated_at=now,
            transitions=(Transition(OperationState.CREATED, now),),
        )

    def move(self, state: OperationState, now: str, message: str = "") -> Operation:
        if not can_move(self.state, state):
            raise IllegalTransition(self.state, state)
        return replace(
            self,
            state=state,
            updated_at=now,
            transitions=(*self.transitions, Transition(state, now, message)),
            message=message or self.message,
        )

    def through(self, states: Sequence[OperationState], now: str) -> Operation:
        op = self
        for state in states:
            op = op.move(state, now)
        return op

    def with_errors(self, problems: Sequence[Problem]) -> Operation:
        return replace(
            self,
            errors=tuple(p.to_dict() for p in problems[:MAX_ERRORS_KEPT]),
            error_count=len(problems),
        )

    # -- the seed's JSON ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "operation_type": self.operation_type,
            "schedule_type": self.schedule_type,
            "operation_device_query": dict(self.operation_device_query),
            "state": self.state.name,
            "state_code": int(self.state),
            "trigger": self.trigger,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "transitions": [
                {"state": t.state.name, "state_code": int(t.state), "at": t.at}
                | ({"message": t.message} if t.message else {})
                for t in self.transitions
            ],
            "revision": self.revision,
            "ref": self.ref,
            "plan_summary": dict(self.plan_summary) if self.plan_summary is not None else None,
            "serial": self.serial,
            "errors": [dict(e) for e in self.errors],
            "error_count": self.error_count,
            "message": self.message,
            "schedule_args": dict(self.schedule_args),
            "arguments": dict(self.arguments),
            "policy": self.policy,
            "waiting_for": list(self.waiting_for),
            "window": dict(self.window) if self.window is not None else None,
            "approval": dict(self.approval) if self.approval is not None else None,
            "deadline": self.deadline,
            "plan_digest": self.plan_digest,
            "ended_by": self.ended_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Operation:
        return cls(
            operation_id=str(data["operation_id"]),
            trigger=str(data.get("trigger", "")),
            created_at=str(data["created_at"]),
            state=OperationState(int(data["state_code"])),
            updated_at=str(data.get("updated_at", "")),
            operation_type=str(data.get("operation_type", OPERATION_TYPE)),
            schedule_type=str(data.get("schedule_type", "IMMEDIATE")),
            operation_device_query=dict(data.get("operation_device_query") or {}),
            transitions=tuple(
                Transition(OperationState(int(t["state_code"])), str(t["at"]), t.get("message", ""))
                for t in data.get("transitions", ())
            ),
            revision=data.get("revision"),
            ref=data.get("ref"),
            plan_summary=data.get("plan_summary"),
            serial=data.get("serial"),
            errors=tuple(data.get("errors") or ()),
            error_count=int(data.get("error_count", 0)),
            message=str(data.get("message", "")),
            schedule_args=dict(data.get("schedule_args") or {}),
            arguments=dict(data.get("arguments") or {}),
            policy=data.get("policy"),
            waiting_for=tuple(data.get("waiting_for") or ()),
            window=data.get("window"),
            approval=data.get("approval"),
            deadline=data.get("deadline"),
            plan_digest=data.get("plan_digest"),
            ended_by=data.get("ended_by"),
        )

    @property
    def started_at(self) -> str:
        return self.transitions[1].at if len(self.transitions) > 1 else self.created_at

    @property
    def finished_at(self) -> str | None:
        return self.updated_at if self.state.final else None


# States an operator may set with PUT /v0/operations/{id}/ (the seed's enum; FAILED = FAILURE).
SETTABLE_STATES = ("FAILED", "CANCELLED", "TIMEOUT", "SCHEDULED")

APPLY_STATES = (
    OperationState.DISPATCHING,
    OperationState.DISPATCHED,
    OperationState.PROCESSING,
)
