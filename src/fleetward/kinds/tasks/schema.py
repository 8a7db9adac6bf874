"""The TaskBatch schema (seed 003, check 1 of 5): every field of the bulk-task body.

A task body copied from the seed's API validates unchanged as an item of
`spec.tasks` (`assigneeIds` / `linkedTasks` as one object or a list; an empty
`id` means none). Dates are ISO 8601 and normalised to UTC; `duration` and
`delayMinutes` are minutes, given as a number or an ISO 8601 duration.
Validation errors are worded like the seed's (`"asset.type" is required`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from fleetward.errors import Problem
from fleetward.kinds.base import Strict, jsonable
from fleetward.kinds.problems import (
    PathProblem,
    YamlPath,
    did_you_mean,
    render_path,
    validation_problems,
)
from fleetward.timestamps import to_iso

Xid = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[^\s/]+$")]
# A workflow's version as the seed writes it ("v1"); a bare number is read the same.
WorkflowVersion = Annotated[str, StringConstraints(pattern=r"^[vV]?[1-9][0-9]{0,8}$")]
# Validators below raise ValueError for wrong types too (TRY004): pydantic turns only
# ValueError and AssertionError into validation errors with a location.

# Runtime fields: what people and systems change after creation (DESIGN §2). A
# manifest may set them for a new task; they are status, never spec.
RUNTIME_FIELDS = (
    "status",
    "completedOn",
    "resolvedBy",
    "resolvedOn",
    "approvedBy",
    "approvedOn",
    "statusAudit",
)
PRIORITIES = ("Low", "Medium", "High", "Urgent")

# -- dates and durations -----------------------------------------------------------


def _utc_text(moment: dt.datetime) -> str:
    """The instant as UTC text; ValueError when UTC is outside the calendar (years 1–9999).

    `9999-12-31T23:59:59-14:00` is a valid ISO 8601 date-time whose UTC instant falls in
    the year 10000, which no date can hold (and `0001-01-01T00:00:00+14:00` in the year 0).
    """
    try:
        moment = moment.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(
            f"The date-time '{moment.isoformat()}' is out of range: in UTC it falls outside "
            "the years 1 to 9999, the dates fleetward can store; fix the date or its offset"
        ) from None
    return to_iso(moment, "auto")


_NO_ZONE = (
    "'{text}' has no time zone, so it names a different instant in every place; "
    "add Z (UTC) or an offset such as +02:00"
)
# The longest duration (and delay) a task may have: 100 years of minutes. Anything
# longer is a typo, and would carry endTime past what a date can hold.
MAX_MINUTES = 100 * 366 * 24 * 60


def _calendar_reason(exc: ValueError) -> str:
    """Why a well-formed date is no date (`2026-02-30`: the day is out of range for the month)."""
    text = str(exc)
    return "" if text.startswith("Invalid isoformat") else f": {text}"


def _date_time(value: Any) -> str:
    """An ISO 8601 date-time with a time zone, as UTC text (`2025-04-30T07:30:04.814Z`)."""
    if isinstance(value, dt.datetime):
        # Unquoted YAML timestamps arrive as datetimes. ruamel's safe loader keeps the
        # zone (`Z`, `+02:00`, ` +02:00`) as tzinfo and gives a naive datetime only when
        # the text had none: that is the zone-less form, refused like the quoted one.
        if value.tzinfo is None:
            text = value.isoformat(sep=" ")
            raise ValueError(_NO_ZONE.format(text=text))
        return _utc_text(value)
    if isinstance(value, dt.date):
        raise ValueError(  # noqa: TRY004 - see the note at the top
            f"The date {value.isoformat()} has no time; write a date-time such as "
            f"{value.isoformat()}T08:00:00Z"
        )
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004 - see the note at the top
            "Expected an ISO 8601 date-time string such as 2025-04-30T07:30:00Z"
        )
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not an ISO 8601 date-time such as 2025-04-30T07:30:00Z"
            + _calendar_reason(exc)
        ) from None
    if len(value) <= 10:
        raise ValueError(f"{value!r} has no time; write a date-time such as {value}T08:00:00Z")
    if moment.tzinfo is None:
        raise ValueError(_NO_ZONE.format(text=value))
    return _utc_text(moment)


def _date_or_date_time(value: Any) -> str:
    """A calendar date (`2025-05-31`) or a date-time with a time zone."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and len(value) <= 10:
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not an ISO 8601 date (2025-05-31) or date-time "
                "(2025-05-31T17:00:00Z)" + _calendar_reason(exc)
            ) from None
    return _date_time(value)


_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(?P<Y>\d+(?:\.\d+)?)Y)?(?:(?P<MO>\d+(?:\.\d+)?)M)?(?:(?P<W>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<D>\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(?P<H>\d+(?:\.\d+)?)H)?(?:(?P<MI>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<S>\d+(?:\.\d+)?)S)?)?$"
)
_MINUTES_PER = {"W": 7 * 24 * 60, "D": 24 * 60, "H": 60, "MI": 1, "S": 1 / 60}


def _minutes(value: Any) -> int | float:
    """Minutes, from a number (the seed's form) or an ISO 8601 duration (`PT1H30M`, `P1D`)."""
    if isinstance(value, bool):
        raise ValueError(  # noqa: TRY004 - see the note at the top
            "Expected minutes (a number) or an ISO 8601 duration such as PT1H30M"
        )
    if isinstance(value, int) and abs(value) > MAX_MINUTES:
        minutes: float = math.inf if value > 0 else -math.inf
    elif isinstance(value, int | float):
        minutes = value
    elif isinstance(value, str):
        match = _ISO_DURATION.match(value.strip().upper())
        if not match:
            raise ValueError(
                f"{value!r} is not a number of minutes or an ISO 8601 duration "
                "such as PT45M, PT1H30M or P1D"
            )
        if match["Y"] or match["MO"]:
            raise ValueError(
                f"{value!r} counts years or months, which have no fixed length; "
                "use weeks, days, hours and minutes (P30D, PT90M)"
            )
        try:
            minutes = sum(float(match[k] or 0) * per for k, per in _MINUTES_PER.items())
        except OverflowError:
            minutes = math.inf
    else:
        raise ValueError("Expected minutes (a number) or an ISO 8601 duration such as PT1H30M")
    if math.isnan(minutes):
        raise ValueError(f"A duration is a finite number of minutes; {value!r} is not a number")
    if minutes < 0:
        raise ValueError(f"{value!r} is negative; a duration is zero or more minutes")
    if not math.isfinite(minutes) or minutes > MAX_MINUTES:
        raise ValueError(
            f"A duration is a finite number of minutes, at most {MAX_MINUTES} (100 years); "
            f"{value!r} is longer"
        )
    return int(minutes) if float(minutes).is_integer() else round(minutes, 6)


def _priority(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for name in PRIORITIES:
        if value.strip().lower() == name.lower():
            return name
    raise ValueError(
        f"{value!r} is not a priority; use one of {', '.join(PRIORITIES)} (any case). "
        + did_you_mean(value.capitalize(), PRIORITIES, "")
    )


def _empty_is_none(value: Any) -> Any:
    """The seed's body writes `"id": ""` for "no id"."""
    return None if value == "" else value


def _one_or_many(value: Any) -> Any:
    """The seed writes `assigneeIds: {id: ...}` (one object) as well as a list."""
    return [value] if isinstance(value, dict) else value


def _status_audit(value: Any) -> Any:
    """`statusAudit`: `<status>On` a date-time with a time zone, `<status>For` minutes."""
    if not isinstance(value, dict):
        return value
    out = jsonable(value)
    for key, entry in value.items():
        name = str(key)
        try:
            if name.endswith("On"):
                out[name] = _date_time(entry)
            elif name.endswith("For"):
                if not isinstance(entry, int | float) or isinstance(entry, bool):
                    raise ValueError("Expected minutes (a number)")
                out[name] = _minutes(entry)
        except ValueError as exc:
            raise ValueError(f"Entry {name!r} of statusAudit: {exc}") from None
    return out


DateTime = Annotated[str, BeforeValidator(_date_time)]
DateOrDateTime = Annotated[str, BeforeValidator(_date_or_date_time)]
Minutes = Annotated[int | float, BeforeValidator(_minutes)]
Priority = Annotated[str, BeforeValidator(_priority)]
OptionalId = Annotated[str | None, BeforeValidator(_empty_is_none)]
FreeMap = Annotated[
    dict[str, Any], BeforeValidator(lambda v: jsonable(v) if isinstance(v, dict) else v)
]

# -- references ----------------------------------------------------------------------

AT_LEAST_ONE = '"value" must contain at least one of [{}]'


class EntityRef(Strict):
    """A Field or TaskType reference: `{id}` or `{xid}` (both must then agree)."""

    id: OptionalId = None
    xid: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> EntityRef:
        if not self.id and not self.xid:
            raise ValueError(AT_LEAST_ONE.format("id, xid"))
        return self


class AssetRef(EntityRef):
    type: str


class TemplateTaskTypeRef(Strict):
    """A template item's TaskType: `{id}`, `{xid}` or, as the seed's template writes it, `{name}`."""

    id: OptionalId = None
    xid: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TemplateTaskTypeRef:
        if not self.id and not self.xid and not self.name:
            raise ValueError(AT_LEAST_ONE.format("id, xid, name"))
        return self


class UserRef(Strict):
    """An assignee: a User by `{id}` or `{userName}`."""

    id: OptionalId = None
    userName: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> UserRef:
        if not self.id and not self.userName:
            raise ValueError(AT_LEAST_ONE.format("id, userName"))
        return self


class LinkedTaskRef(Strict):
    id: OptionalId = None
    xid: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LinkedTaskRef:
        if not self.id and not self.xid:
            raise ValueError(AT_LEAST_ONE.format("id, xid"))
        return self


class ItemRef(Strict):
    """`dependsOn` / `sameAssigneeAs`: another item of the same template, by xid."""

    xid: Xid


# -- the task body -------------------------------------------------------------------


class Part(Strict):
    picklist: FreeMap = Field(default_factory=dict)
    picklistOptionId: str | None = None
    quantity: int | float = Field(default=0, ge=0)


class Attachment(Strict):
    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    region: str | None = None


class TemplateItem(Strict):
    """One item of a task's template; field, asset and taskType default to the task's."""

    xid: Xid
    field: EntityRef | None = None
    asset: AssetRef | None = None
    taskType: TemplateTaskTypeRef | None = None
    data: FreeMap = Field(default_factory=dict)
    description: str | None = None
    tenantId: str | None = None
    isHardAssignee: bool = False
    eventSource: str | None = None
    dependsOn: ItemRef | None = None
    sameAssigneeAs: ItemRef | None = None
    globalAttributes: FreeMap = Field(default_factory=dict)
    workflowStepId: str | None = None
    workflowVersion: WorkflowVersion | None = None


class TaskSpec(Strict):
    """One task of a batch: the seed's JSON structure, field for field."""

    xid: Xid
    id: OptionalId = None
    field: EntityRef
    asset: AssetRef
    taskType: EntityRef
    tenantId: str | None = None
    description: str | None = None
    assigneeIds: Annotated[list[UserRef], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    linkedTasks: Annotated[list[LinkedTaskRef], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    score: int | float | None = None
    increment: int | float | None = None
    priority: Priority | None = None
    dueDate: DateOrDateTime | None = None
    startTime: DateTime | None = None
    duration: Minutes | None = None
    delayMinutes: Minutes | None = None
    workOrderNumber: str | None = None
    source: str | None = None
    parts: list[Part] = Field(default_factory=list)
    formSchema: FreeMap = Field(default_factory=dict)
    onlyAllowManualScoreUpdate: bool = False
    isDeleted: Literal[False] = False
    approvalStatus: Literal["pending", "approved", "rejected"] | None = None
    approverIds: list[str] = Field(default_factory=list)
    requestorIds: list[str] = Field(default_factory=list)
    template: list[TemplateItem] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)
    parentTaskId: str | None = None
    workflowStepId: str | None = None
    workflowVersion: WorkflowVersion | None = None
    correlationId: str | None = None
    globalAttributes: FreeMap = Field(default_factory=dict)
    # Runtime status: set on create when given, then owned by people (RUNTIME_FIELDS).
    status: str | None = Field(default=None, min_length=1)
    completedOn: DateTime | None = None
    resolvedBy: str | None = None
    resolvedOn: DateTime | None = None
    approvedBy: str | None = None
    approvedOn: DateTime | None = None
    statusAudit: Annotated[dict[str, Any], BeforeValidator(_status_audit)] | None = None

    @field_validator("isDeleted", mode="before")
    @classmethod
    def _not_deleted(cls, value: Any) -> Any:
        if value is True:
            raise ValueError(
                "A task is soft-deleted by removing it from the manifests, not by isDeleted: true"
            )
        return value

    @model_validator(mode="after")
    def _end_time_fits(self) -> TaskSpec:
        """endTime (startTime + duration) must be a date a calendar can hold (year ≤ 9999)."""
        if self.startTime is not None and self.duration is not None:
            try:
                dt.datetime.fromisoformat(self.startTime) + dt.timedelta(minutes=self.duration)
            except OverflowError:
                raise ValueError(
                    f"The task ends after the year 9999: startTime {self.startTime} plus "
                    f"duration {self.duration} minutes; shorten the duration or fix startTime"
                ) from None
        return self


class TaskBatchSpec(Strict):
    description: str | None = None
    tasks: list[TaskSpec] = Field(default_factory=list)


def _raw_xid(raw: Any, index: Any) -> str | None:
    """The xid of task `index` of the spec as read (`raw`), when it has a usable one."""
    tasks = raw.get("tasks") if isinstance(raw, dict) else None
    if not isinstance(tasks, list) or not isinstance(index, int) or not 0 <= index < len(tasks):
        return None
    xid = tasks[index].get("xid") if isinstance(tasks[index], dict) else None
    return xid if isinstance(xid, str) and xid else None


# -- errors in the seed's words ------------------------------------------------------

_REFERENCES = {"field": "Field", "asset": "Asset", "taskType": "TaskType"}


def schema_problems(exc: ValidationError, prefix: YamlPath, raw: Any) -> list[PathProblem]:
    """Pydantic's errors of a TaskBatch spec, reworded as the seed's SchemaErrors; each
    names the xid its task has in `raw` (the spec as read), when it has one."""
    generic = validation_problems(exc, prefix, TaskBatchSpec, "a TaskBatch spec")
    out: list[PathProblem] = []
    for err, located in zip(exc.errors(include_url=False), generic):
        loc = tuple(err["loc"])
        seed = _seed_message(err, loc)
        if len(loc) < 2 or loc[0] != "tasks":
            out.append(located)
            continue
        xid = _raw_xid(raw, loc[1])
        about = {"task": loc[1], **({"xid": xid} if xid is not None else {})}
        if seed is None:
            path, is_key, problem = located
            message = f"SchemaError : {problem.error}"
            parameters = {**problem.parameters, "check": "schema", "message": message, **about}
            out.append((path, is_key, dataclasses.replace(problem, parameters=parameters)))
            continue
        message, resolution = seed
        task = (*prefix, *loc[:2])
        where = render_path((*prefix, *loc))
        path = (*prefix, *loc[:-1]) if err["type"] == "missing" else (*prefix, *loc)
        out.append(
            (
                path,
                False,
                Problem(
                    f"SchemaError: {message}",
                    f"{where} fails the task schema (check 1 of 5) in {render_path(task)}: "
                    f"{message}.",
                    resolution,
                    parameters={
                        "check": "schema",
                        "message": f"SchemaError : {message}",
                        **about,
                    },
                ),
            )
        )
    return out


def _seed_message(err: Any, loc: YamlPath) -> tuple[str, str] | None:
    names = [str(p) for p in loc[2:] if not isinstance(p, int)]
    dotted = render_path(loc[2:])
    last = names[-1] if names else ""
    if err["type"] == "missing":
        if last == "asset":
            return (
                '"asset.type" is required',
                "Add the task's asset as asset: {xid: ..., type: ...} (or {id: ..., type: ...}).",
            )
        if last in _REFERENCES:
            return (
                AT_LEAST_ONE.format("id, xid"),
                f"Add {last}: {{xid: ...}} (or {{id: ...}}) naming a declared {_REFERENCES[last]}.",
            )
        return f'"{dotted}" is required', f'Add "{last}" here.'
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    if message.startswith('"value" must contain'):
        return message, "Give the reference an id or an xid (a user: an id or a userName)."
    if err["type"] == "string_too_short" and err.get("input") == "":
        return f'"{dotted}" is not allowed to be empty', f'Give "{last}" a value.'
    return None
