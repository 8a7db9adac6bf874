"""Operations: every reconcile as a record with the operations seed's states and codes.

An Operation moves CREATED → RESOLVING (fetch, load, desire, plan) → RESOLVED
(plan ready) → DISPATCHING → DISPATCHED → PROCESSING → COMPLETED (the apply)
→ SUCCESS, or ends in FAILURE, CANCELLED or TIMEOUT. Every transition is
timestamped. Pure: persistence is the store's (`store/operations.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    with_config,
)
from typing_extensions import NotRequired, TypedDict  # pydantic reads typing's from 3.12

from fleetward.errors import Problem
from fleetward.model import HeldDocument

OPERATION_TYPE: Literal["CONVERGE"] = "CONVERGE"
MAX_ERRORS_KEPT = 100  # per operation; the count says how many there were
MAX_HELD_ERRORS = 10  # per held document in a record; `errorCount` says how many


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

    @property
    def state_code(self) -> int:
        return int(self.state)


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
    # Request arguments: dryRun, allowMassStop, timeout (seconds); targets (a targeted
    # apply); rollbackTo, rollbackSerial (a rollback).
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
    # The documents failure isolation held back at their last applied version (`held_record`).
    held: tuple[Mapping[str, Any], ...] = ()

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

    def with_held(self, held: Sequence[HeldDocument]) -> Operation:
        return replace(self, held=tuple(held_record(h) for h in held[:MAX_ERRORS_KEPT]))

    def with_errors(self, problems: Sequence[Problem]) -> Operation:
        return replace(
            self,
            errors=tuple(p.to_dict() for p in problems[:MAX_ERRORS_KEPT]),
            error_count=len(problems),
        )

    # -- the seed's JSON (the log's records and the API's answers: one shape) ----------

    @property
    def state_code(self) -> int:
        return int(self.state)

    def to_dict(self) -> dict[str, Any]:
        return OperationRecord.of(self).model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Operation:
        return OperationRecord.model_validate(data).operation()

    @property
    def started_at(self) -> str:
        return self.transitions[1].at if len(self.transitions) > 1 else self.created_at

    @property
    def finished_at(self) -> str | None:
        return self.updated_at if self.state.final else None


def held_record(held: HeldDocument) -> dict[str, Any]:
    """A held document as operations and summary.json record it: where, why, its first
    errors, and how many stored objects it keeps (the plan lists them)."""
    return {
        "address": held.address,
        "location": held.location,
        "because": held.because,
        "errors": [p.to_dict() for p in held.errors[:MAX_HELD_ERRORS]],
        "errorCount": len(held.errors),
        "keptObjects": len(held.kept),
    }


# States an operator may set with PUT /v0/operations/{id}/ (the seed's enum; FAILED = FAILURE).
SettableState = Literal["FAILED", "CANCELLED", "TIMEOUT", "SCHEDULED"]
SETTABLE_STATES: tuple[str, ...] = get_args(SettableState)

APPLY_STATES = (
    OperationState.DISPATCHING,
    OperationState.DISPATCHED,
    OperationState.PROCESSING,
)


# -- the record ------------------------------------------------------------------------------------
# One Operation as JSON: what the log stores (in this key order: the log's bytes depend on it)
# and what the API answers; /openapi.json's Operation schema is generated from it.


def _state_by_name(value: Any) -> Any:
    if isinstance(value, str) and value in OperationState.__members__:
        return OperationState[value]
    return value


def _empty_if_null(value: Any) -> Any:
    return {} if value is None else value


def _none_if_empty(value: Any) -> Any:
    return () if value is None else value


# The state by name in JSON (its code is beside it); read from a name or from the enum.
StateName = Annotated[
    OperationState,
    BeforeValidator(_state_by_name),
    PlainSerializer(lambda state: state.name, return_type=str),
    WithJsonSchema({"type": "string", "enum": [s.name for s in OperationState]}),
]
StateCode = Annotated[int, Field(json_schema_extra={"enum": [int(s) for s in OperationState]})]
Instant = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
# Logs written before a field existed hold null (or nothing) where an empty value is meant.
JsonObject = Annotated[dict[str, Any], BeforeValidator(_empty_if_null)]


# The record's objects keep keys they do not name (`extra="allow"`): reading a log never
# drops what another version of fleetward wrote there.
_OPEN = ConfigDict(extra="allow")


@with_config(_OPEN)
class ProblemRecord(TypedDict):
    """Problem.to_dict(): the error body of DESIGN §5 (the API's refusals answer it too)."""

    error: str
    reason: str
    resolution: str
    location: str | None
    parameters: dict[str, Any]


@with_config(_OPEN)
class HeldRecord(TypedDict):
    """A document failure isolation held back at its last applied version."""

    address: str
    location: str | None
    because: str
    errors: list[ProblemRecord]
    errorCount: int
    keptObjects: int


@with_config(_OPEN)
class WindowArgs(TypedDict, total=False):
    """The window of a WINDOW operation, as requested (UTC)."""

    start: Instant
    end: Instant


@with_config(_OPEN)
class ArgumentsRecord(TypedDict, total=False):
    """The request's arguments that were set (timeout in seconds)."""

    dryRun: bool
    allowMassStop: bool
    timeout: int | float  # as recorded: 600 stays 600, 600.0 stays 600.0
    targets: list[str]  # a targeted apply's --target expressions
    rollbackTo: str  # a rollback's revision (the commit SHA it returns to)
    rollbackSerial: int  # and the history serial that revision was applied at
    rollbackBy: str  # who asked for the rollback


@with_config(_OPEN)
class WindowRecord(TypedDict):
    """The window a SCHEDULED operation waits for or runs in."""

    opens_at: Instant | None
    closes_at: Instant | None


@with_config(_OPEN)
class ApprovalRecord(TypedDict):
    """Manual approval of the held changes."""

    required: bool
    approved_by: str | None
    approved_at: Instant | None
    comment: NotRequired[str]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class TransitionRecord(_Record):
    state: StateName
    state_code: StateCode
    at: Instant
    message: str = Field(default="", exclude_if=lambda message: not message)


class OperationRecord(_Record):
    """An Operation as the seed's JSON. Reading takes the state from `state_code`."""

    model_config = ConfigDict(title="Operation")

    operation_id: str = Field(json_schema_extra={"format": "uuid"})
    operation_type: Literal["CONVERGE"] = OPERATION_TYPE
    schedule_type: Literal["IMMEDIATE", "WINDOW"] = "IMMEDIATE"
    operation_device_query: JsonObject = Field(
        default_factory=dict, description="The objects it converges (empty: every object)."
    )
    state: StateName
    state_code: StateCode
    trigger: str = ""
    created_at: Instant
    updated_at: str = ""
    transitions: tuple[TransitionRecord, ...] = ()
    revision: str | None = None
    ref: str | None = None
    plan_summary: dict[str, int] | None = None
    serial: int | None = None
    errors: Annotated[tuple[ProblemRecord, ...], BeforeValidator(_none_if_empty)] = ()
    error_count: int = Field(default=0, ge=0)
    message: str = ""
    schedule_args: Annotated[WindowArgs, BeforeValidator(_empty_if_null)] = Field(
        default_factory=lambda: WindowArgs()
    )
    arguments: Annotated[ArgumentsRecord, BeforeValidator(_empty_if_null)] = Field(
        default_factory=lambda: ArgumentsRecord()
    )
    policy: str | None = Field(
        default=None, description="The SyncPolicy whose held changes this operation carries."
    )
    # Not an enum: a reason added later must not make older logs unreadable, nor newer ones.
    waiting_for: Annotated[tuple[str, ...], BeforeValidator(_none_if_empty)] = Field(
        default=(),
        description="What a SCHEDULED operation waits for: window, approval, suspended, "
        "blocked (its policy's mass-stop guard) or rejected (an operator ended it before).",
    )
    window: WindowRecord | None = None
    approval: ApprovalRecord | None = None
    deadline: Instant | None = Field(
        default=None, description="Past this instant the operation ends TIMEOUT without writing."
    )
    plan_digest: str | None = Field(
        default=None, description="Digest of the held changes an approval binds to."
    )
    ended_by: str | None = Field(
        default=None,
        description='"operator" when ended with PUT /v0/operations/{operationId}/.',
    )
    # Left out when empty: records without held documents keep their bytes.
    held: Annotated[tuple[HeldRecord, ...], BeforeValidator(_none_if_empty)] = Field(
        default=(),
        exclude_if=lambda held: not held,
        description="The documents failure isolation held back at their last applied "
        "version (the run applied the rest of the revision).",
    )

    @classmethod
    def of(cls, op: Operation) -> OperationRecord:
        return cls.model_validate(op, from_attributes=True)

    def operation(self) -> Operation:
        values = {f.name: getattr(self, f.name) for f in fields(Operation)}
        values["state"] = OperationState(self.state_code)
        values["transitions"] = tuple(
            Transition(OperationState(t.state_code), t.at, t.message) for t in self.transitions
        )
        return Operation(**values)
