"""The HTTP API's bodies as pydantic models: what requests may carry and what answers hold.

The contract is stated once, here: the handlers read requests with these models, answer
with them, and /openapi.json is generated from them (`openapi.py`). Every rule a body must
follow sits in a model and, where JSON Schema can say it, in the model's schema as well,
so that a request the document allows is one the handlers accept. An Operation's own
shape is `OperationRecord` (the log stores the same JSON).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from fleetward.daemon.control import ConvergeRequest
from fleetward.durations import bounded_pattern, check_range, parse_duration
from fleetward.http.reading import Reader
from fleetward.operations import OperationRecord, OperationState, SettableState, StateName
from fleetward.policy import DeviceQuery
from fleetward.store.operations import ORDERINGS
from fleetward.timestamps import now, to_iso

MAX_LIMIT = 1000  # operations per page of GET /v0/operations/
MAX_REASON = 1000
MAX_NAME = 200
# An operation that may wait longer than a week is a forgotten one, not a slow one.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600.0
# Custom validation errors: their context carries the whole problem (see `refusals`).
ERROR_TYPE = "fleetward_http"


def _fail(error: str, reason: str, resolution: str) -> PydanticCustomError:
    """A refusal in our words; an empty `error` reads "Invalid <the field's path>"."""
    context = {"error": error, "reason": reason, "resolution": resolution}
    return PydanticCustomError(ERROR_TYPE, "{reason}", context)


class Body(BaseModel):
    """A request body: unknown fields are refused, and nothing is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# -- POST /v0/operations/ --------------------------------------------------------------------


def _utc(value: Any) -> dt.datetime:
    """An ISO 8601 date-time with a time zone, as a UTC instant (whole seconds)."""
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.astimezone(dt.UTC).replace(microsecond=0)
        except (ValueError, OverflowError):
            pass
    raise _fail(
        "",
        f"{value!r} is not an ISO 8601 date-time with a time zone (within years 1 to 9999 "
        "in UTC).",
        "Write e.g. 2030-01-01T22:00:00Z or 2030-01-01T23:00:00+01:00.",
    )


Instant = Annotated[
    dt.datetime,
    PlainValidator(_utc),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Window(Body):
    """schedule_args: the window a WINDOW operation applies in (it ends after it starts,
    in the future, and both ends lie within years 1 to 9999 in UTC)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"start": "2030-01-01T22:00:00Z", "end": "2030-01-02T04:00:00Z"}]
        }
    )

    start: Instant = Field(description="ISO 8601 with a time zone.")
    end: Instant = Field(description="After start, and in the future.")

    @field_validator("end")
    @classmethod
    def _after_start_and_ahead(cls, end: dt.datetime, info: ValidationInfo) -> dt.datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise _fail(
                "The window ends before it starts",
                f"end {to_iso(end)} is not after start {to_iso(start)}.",
                "Send an end after the start.",
            )
        current = (info.context or {}).get("now") or now()
        if end <= current:
            raise _fail(
                "The window is over",
                f"end {to_iso(end)} is in the past (now {to_iso(current)}).",
                "Send a window that ends in the future.",
            )
        return end


# The duration strings timeout accepts: the one grammar's (`fleetward.durations`), in
# (0, 7 days]. The schema states the same pattern, so a request it allows is one the
# handler accepts.
TIMEOUT_PATTERN = bounded_pattern(MAX_TIMEOUT_SECONDS)
_TIMEOUT = re.compile(TIMEOUT_PATTERN)


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 < value <= MAX_TIMEOUT_SECONDS:
            return float(value)
    elif isinstance(value, str) and _TIMEOUT.fullmatch(value):
        return check_range(value, parse_duration(value), 0.0, MAX_TIMEOUT_SECONDS)
    raise _fail(
        "",
        f"timeout must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g} seconds (7 days); "
        f"got {value!r}.",
        'Send seconds (600) or a duration ("90s", "10m", "1h30m", "PT2H").',
    )


Timeout = Annotated[
    float,
    PlainValidator(_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_SECONDS},
                {"type": "string", "pattern": TIMEOUT_PATTERN},
            ]
        }
    ),
]


class Arguments(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"dryRun": True, "timeout": "1h"}]})

    dryRun: bool | None = Field(default=None, description="Plan and report; write nothing.")
    allowMassStop: bool | None = Field(
        default=None, description="Let the plan stop or delete past the mass-stop guard."
    )
    timeout: Timeout | None = Field(
        default=None,
        description="Seconds (> 0) or a duration such as 90s, 10m, 1h30m, PT2H; past it the "
        f"operation ends TIMEOUT. At most {MAX_TIMEOUT_SECONDS:g} seconds.",
    )


class _Create(Body):
    operation_type: Literal["CONVERGE"] = Field(
        description="Every operation names its type; fleetward has one: CONVERGE."
    )
    operation_device_query: DeviceQuery | None = Field(
        default=None,
        description="Limits the objects converged (all conditions must hold); empty or "
        "absent: every object.",
    )
    arguments: Arguments | None = None


def _no_window(value: Any) -> None:
    if value not in (None, {}):
        raise _fail(
            "schedule_args is only for WINDOW operations",
            "An IMMEDIATE operation runs now; a window would be ignored.",
            'Drop schedule_args, or send "schedule_type": "WINDOW".',
        )


class CreateNow(_Create):
    """An IMMEDIATE operation: converge now."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"operation_type": "CONVERGE", "arguments": {"dryRun": True}}]
        }
    )

    schedule_type: Literal["IMMEDIATE"] | None = Field(
        default=None, description="IMMEDIATE (the default): converge now."
    )
    schedule_args: Annotated[
        None,
        PlainValidator(_no_window),
        WithJsonSchema({"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]}),
    ] = None


class CreateInWindow(_Create):
    """A WINDOW operation: converge only between schedule_args.start and .end."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "operation_type": "CONVERGE",
                    "schedule_type": "WINDOW",
                    "schedule_args": {
                        "start": "2030-01-01T22:00:00Z",
                        "end": "2030-01-02T04:00:00Z",
                    },
                    "operation_device_query": {"kinds": ["Asset"], "names": ["TRK-*"]},
                    "arguments": {"dryRun": False, "allowMassStop": False, "timeout": "1h"},
                }
            ]
        }
    )

    schedule_type: Literal["WINDOW"]
    schedule_args: Window


def _schedule_type(body: Any) -> str | None:
    """Which member reads a create body; None (refused) for an unknown schedule_type."""
    if not isinstance(body, dict):
        return "IMMEDIATE"  # refused there as not an object
    given = body.get("schedule_type")
    return "IMMEDIATE" if given is None else given if given in ("IMMEDIATE", "WINDOW") else None


CreateOperation = Annotated[
    Annotated[CreateNow, Tag("IMMEDIATE")] | Annotated[CreateInWindow, Tag("WINDOW")],
    Discriminator(
        _schedule_type,
        custom_error_type=ERROR_TYPE,
        custom_error_message="schedule_type must be IMMEDIATE or WINDOW",
        custom_error_context={
            "error": "Invalid schedule_type",
            "reason": "schedule_type must be IMMEDIATE, WINDOW or absent (IMMEDIATE).",
            "resolution": 'Send "schedule_type": "IMMEDIATE" (run now) or "WINDOW" with '
            'schedule_args {"start", "end"}.',
            "at": "schedule_type",
        },
    ),
]
CREATE = Reader[CreateNow | CreateInWindow](
    CreateOperation,
    '{"operation_type": "CONVERGE", "schedule_type": "IMMEDIATE"}',
    {"IMMEDIATE": CreateNow, "WINDOW": CreateInWindow},
)


def converge_request(body: CreateNow | CreateInWindow) -> ConvergeRequest:
    """The checked body as the daemon's request (window times in UTC)."""
    query = body.operation_device_query
    arguments = body.arguments or Arguments()
    window = body.schedule_args if isinstance(body, CreateInWindow) else None
    return ConvergeRequest(
        schedule_type="WINDOW" if window is not None else "IMMEDIATE",
        window_start=to_iso(window.start) if window is not None else None,
        window_end=to_iso(window.end) if window is not None else None,
        # {} (or none) is every object; any field given, even empty, is a query of its own.
        query=query.model_dump() if query is not None and query.model_fields_set else {},
        dry_run=bool(arguments.dryRun),
        allow_mass_stop=bool(arguments.allowMassStop),
        timeout=arguments.timeout,
    )


# -- PUT /v0/operations/{id}/ and POST .../approve ---------------------------------------------


class StateChange(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"state": "CANCELLED", "reason": "User requested"}]}
    )

    state: SettableState = Field(
        description="The new state: FAILED, CANCELLED, TIMEOUT or SCHEDULED (FAILED is the "
        "FAILURE state)."
    )
    reason: Annotated[str, Field(max_length=MAX_REASON)] | None = None

    @property
    def target(self) -> OperationState:
        return OperationState.FAILURE if self.state == "FAILED" else OperationState[self.state]


STATE_CHANGE = Reader[StateChange](StateChange, '{"state": "CANCELLED"}')


class Approval(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"by": "alice", "comment": "reviewed the plan"}]}
    )

    by: Annotated[str, Field(max_length=MAX_NAME)] | None = Field(
        default=None, description='Default "api".'
    )
    comment: Annotated[str, Field(max_length=MAX_REASON)] | None = None

    @property
    def approver(self) -> str:
        return (self.by or "").strip() or "api"


APPROVAL = Reader[Approval](Approval, '{"by": "alice"}')


class RollbackRequest(Body):
    """POST /v0/rollback: the apply to go back to, as `fleetward rollback --to` takes it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"to": "3", "by": "alice"}]})

    # Surrounding whitespace is ignored, as the CLI's --to strips it.
    to: Annotated[
        str,
        Field(min_length=1, max_length=80, pattern=r"^\s*([0-9]{1,6}|[0-9a-fA-F]{4,64})\s*$"),
    ] = (
        Field(
            description="A serial of the store's history (up to 6 digits), or the commit SHA "
            "(4 hex digits at least) an apply in it wrote."
        )
    )
    by: Annotated[str, Field(max_length=MAX_NAME)] | None = Field(
        default=None, description='Who rolls back. Default "api".'
    )

    @property
    def requester(self) -> str:
        return (self.by or "").strip() or "api"


ROLLBACK = Reader[RollbackRequest](RollbackRequest, '{"to": "3"}')


# -- GET /v0/operations/ ---------------------------------------------------------------------


def _state(value: Any) -> OperationState:
    try:
        return OperationState.parse(value)
    except (KeyError, ValueError):
        raise _fail(
            "Invalid state",
            f"{value!r} is not an operation state.",
            "Pass a state code or name: "
            + ", ".join(f"{s.value} ({s.name})" for s in OperationState),
        ) from None


def _ordering(value: Any) -> str:
    if isinstance(value, str) and value.removeprefix("-") in ORDERINGS:
        return value
    raise _fail(
        "Invalid ordering",
        f"{value!r} is not a field operations can be ordered by.",
        f"Use one of {', '.join(ORDERINGS)}; prefix with - to reverse.",
    )


class ListQuery(BaseModel):
    """The query parameters of GET /v0/operations/ (strings, read as what they say)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=50, ge=0, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0)
    state: Annotated[
        OperationState | None,
        PlainValidator(_state),
        WithJsonSchema({"type": "integer", "enum": [int(s) for s in OperationState]}),
    ] = Field(default=None, description="A state code (names such as SUCCESS are accepted too).")
    ordering: Annotated[
        str,
        PlainValidator(_ordering),
        WithJsonSchema({"type": "string", "enum": [p + o for o in ORDERINGS for p in ("", "-")]}),
    ] = Field(default="-created_at", description="Field to order by; a leading - reverses.")


LIST_QUERY = Reader[ListQuery](ListQuery, "?limit=50&offset=0", where="query")


# -- answers -----------------------------------------------------------------------------------


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class OperationAnswer(Answer):
    content: OperationRecord


class Page(Answer):
    count: int
    limit: int
    offset: int
    results: list[OperationRecord]


class PageAnswer(Answer):
    content: Page


class StateAnswer(Answer):
    operationId: str
    status: StateName
    content: OperationRecord


class Delivery(Answer):
    """What the webhook did with a delivery; `ignored` says why it started nothing."""

    accepted: bool
    event: str
    operation_id: str | None
    ignored: str | None = Field(default=None, exclude_if=lambda reason: reason is None)


class DeliveryAnswer(Answer):
    content: Delivery


class Alive(Answer):
    status: Literal["ok"] = "ok"
    version: str


class Failing(Answer):
    status: Literal["failing"] = "failing"
    reason: str


class Readiness(Answer):
    ready: bool
    # "leader": this daemon fetches, plans and applies; "standby": a replica of a
    # PostgreSQL store serving reads and requests while another one leads.
    role: Literal["leader", "standby"] = Field(
        description="leader: this daemon fetches, plans and applies; standby: a replica "
        "of the same PostgreSQL store that serves reads and requests while another leads"
    )
    reasons: list[str]
    checks: dict[str, Any]

