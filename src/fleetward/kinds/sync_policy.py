"""SyncPolicy (seed 001): how and when the objects of selected documents converge.

A document becomes `SyncPolicy/<name>`. Besides the kind, this module holds the
pure pieces policies need: selectors over documents, cron windows (`window_state`)
and the operations API's device query over objects (`parse_device_query`).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from fleetward.durations import check_range, format_duration, parse_duration
from fleetward.errors import Problem
from fleetward.kinds.base import Document, KindPlugin, ObjectKind, Strict, declare
from fleetward.kinds.problems import (
    PathProblem,
    YamlPath,
    did_you_mean,
    render_path,
    validation_problems,
)
from fleetward.model import Action, DesiredObject

UTC = dt.UTC
MAX_DURATION = dt.timedelta(days=7)
# Windows open on cron's minutes; one shorter than a second cannot be told from closed.
MIN_WINDOW = dt.timedelta(seconds=1)
# The error type of this module's own validation errors: their context carries a whole
# Problem (error, reason, resolution), which `located_problems` puts in place of the
# generic "Invalid value" wording.
_ERROR_TYPE = "fleetward_policy"


def _fail(error: str, reason: str, resolution: str) -> PydanticCustomError:
    return PydanticCustomError(
        _ERROR_TYPE, "{reason}", {"error": error, "reason": reason, "resolution": resolution}
    )


# -- label selectors ---------------------------------------------------------------


class LabelRequirement(Strict):
    """A Kubernetes LabelSelectorRequirement: `key` `operator` `values`."""

    # The JSON schema states `_arity` too (one shape per operator), so that a requirement
    # valid by the operations API's /openapi.json is one this model accepts.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {
                        "operator": {"enum": ["In", "NotIn"]},
                        "values": {"minItems": 1},
                    },
                    "required": ["values"],
                },
                {
                    "properties": {
                        "operator": {"enum": ["Exists", "DoesNotExist"]},
                        "values": {"maxItems": 0},
                    }
                },
            ]
        }
    )

    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list, validate_default=True)

    @field_validator("values")
    @classmethod
    def _arity(cls, values: list[str], info: ValidationInfo) -> list[str]:
        operator = info.data.get("operator")
        if operator in ("In", "NotIn") and not values:
            raise _fail(
                f"{operator} needs values",
                f"The operator {operator} compares the label with a list of values, "
                "and this list is empty.",
                "Add values: [...], or use Exists / DoesNotExist to test only the key.",
            )
        if operator in ("Exists", "DoesNotExist") and values:
            raise _fail(
                f"{operator} takes no values",
                f"The operator {operator} tests only whether the key is there.",
                "Remove values, or use In / NotIn to compare the label's value.",
            )
        return values

    def holds(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":  # as in Kubernetes: a missing key is "not in"
            return not present or labels[self.key] not in self.values
        return present if self.operator == "Exists" else not present


def _labels_hold(
    match_labels: Mapping[str, str],
    expressions: Iterable[LabelRequirement],
    labels: Mapping[str, str],
) -> bool:
    return all(labels.get(k) == v for k, v in match_labels.items()) and all(
        e.holds(labels) for e in expressions
    )


def _names_hold(patterns: list[str], name: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _known_manifest_kinds() -> list[str]:
    from fleetward.kinds import REGISTRY  # the registry imports this module

    return sorted(k for k in REGISTRY if k != "SyncPolicy")


def _manifest_kind(kind: str) -> str:
    if kind == "SyncPolicy":
        raise _fail(
            "A SyncPolicy cannot select SyncPolicy",
            "Policies govern the objects of other documents; policies themselves always "
            "apply immediately, so that a policy can never hold back its own repair.",
            "Remove SyncPolicy from selector.kinds.",
        )
    known = _known_manifest_kinds()
    if kind not in known:
        raise _fail(
            f"Unknown manifest kind {kind!r}",
            f"A selector picks manifest documents of the kinds {', '.join(known)}.",
            did_you_mean(kind, known, "Use one of the known kinds."),
        )
    return kind


class Selector(Strict):
    """Picks manifest documents; a policy governs every object they produce."""

    kinds: list[Annotated[str, AfterValidator(_manifest_kind)]] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)  # fnmatch globs over document names ("prod-*")
    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: list[LabelRequirement] = Field(default_factory=list)

    def matches(self, kind: str, name: str, labels: Mapping[str, str] | None) -> bool:
        """Whether the document `kind/name` is selected: every given condition holds (AND).

        An empty selector matches every document. `labels` None means unknown — the
        document is gone from Git — and then the label conditions count as satisfied, so
        a policy keeps governing the removal of what it governed.
        """
        if self.kinds and kind not in self.kinds:
            return False
        if not _names_hold(self.names, name):
            return False
        return labels is None or _labels_hold(self.matchLabels, self.matchExpressions, labels)


# -- schedules ----------------------------------------------------------------------

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text.lower() in _WEEKDAYS:
        return _WEEKDAYS.index(text.lower())
    raise ValueError(f"the day of week {text!r} is not 0-7 (0 and 7 are Sunday) or sun-sat")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler 3 reads it: day names, listed.

    APScheduler 3 numbers weekdays from Monday = 0, crontab from Sunday = 0
    (apscheduler #286): "1-5" would silently mean Tuesday to Saturday. Names mean the
    same to both, so numbers, ranges and steps are spelt out as names.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"the step {step_text!r} in {part!r} is not a positive number")
        step = int(step_text) if slash else 1
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _weekday(first), _weekday(last)
        else:
            low = _weekday(base)
            high = 6 if slash else low
        if low > high:
            raise ValueError(f"the range {base!r} runs backwards")
        days.update(d % 7 for d in range(low, high + 1, step))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


@functools.lru_cache(maxsize=256)
def cron_trigger(cron: str, timezone: str) -> CronTrigger:
    """The trigger of a 5-field crontab expression (crontab weekdays); ValueError if bad."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    fields[4] = crontab_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=zoneinfo.ZoneInfo(timezone))


# Any instant: a cron that fires at all fires after it (cron has no years).
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=UTC)


def _check_cron(cron: str) -> None:
    try:
        trigger = cron_trigger(cron, "UTC")
    except (ValueError, TypeError, KeyError) as exc:
        raise _fail(
            "Invalid cron expression",
            f"{cron!r}: {str(exc).rstrip('.')}.",
            'Write five fields, minute hour day-of-month month day-of-week, e.g. "0 2 * * *" '
            '(every day at 02:00) or "30 1 * * sat,sun".',
        ) from exc
    if trigger.get_next_fire_time(None, _EPOCH) is None:
        raise _fail(
            "Cron expression never fires",
            f"{cron!r} names no date that exists (e.g. 30 February), so the window would "
            "never open and hold back every change it governs.",
            "Fix the day and month fields.",
        )


@functools.lru_cache(maxsize=1)
def _zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


class Schedule(Strict):
    """IMMEDIATE, or WINDOWs that open at each cron fire time for `duration`."""

    type: Literal["IMMEDIATE", "WINDOW"] = "IMMEDIATE"
    # 5-field crontab; when both day fields are restricted both must match (APScheduler's
    # rule, unlike Vixie cron's "either").
    cron: str | None = Field(default=None, validate_default=True)
    duration: str | None = Field(default=None, validate_default=True)
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if cron is None and kind == "WINDOW":
            raise _fail(
                "WINDOW schedule without cron",
                "A WINDOW schedule opens at the times a cron expression names, and this "
                "one names none.",
                'Add cron: "0 2 * * *" (minute hour day-of-month month day-of-week), '
                "or use type: IMMEDIATE.",
            )
        if cron is not None and kind == "IMMEDIATE":
            raise _fail(
                "cron on an IMMEDIATE schedule",
                "An IMMEDIATE schedule applies changes as soon as they are planned; a cron "
                "expression means nothing there.",
                "Remove cron and duration, or set type: WINDOW.",
            )
        if cron is not None:
            _check_cron(cron)
        return cron

    @field_validator("duration")
    @classmethod
    def _duration(cls, duration: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if duration is None and kind == "WINDOW":
            raise _fail(
                "WINDOW schedule without duration",
                "A WINDOW schedule stays open for a duration after each cron fire time, "
                "and this one gives none.",
                "Add duration: 2h (or 90m, 1h30m, PT2H).",
            )
        if duration is not None and kind == "IMMEDIATE":
            raise _fail(
                "duration on an IMMEDIATE schedule",
                "An IMMEDIATE schedule has no window, so a duration means nothing there.",
                "Remove duration, or set type: WINDOW.",
            )
        if duration is None:
            return None
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise _fail(
                "Invalid duration",
                f"{exc}.",
                "Write a duration such as 2h, 90m, 1h30m, 45s or PT2H.",
            ) from None
        try:
            check_range(duration, seconds, MIN_WINDOW.total_seconds(), MAX_DURATION.total_seconds())
        except ValueError as exc:
            raise _fail(
                "Duration out of range",
                f"A window lasts at least 1s and at most 7 days, and {exc}.",
                "Use a duration between 1s and 7d (a window that never closes is type: IMMEDIATE).",
            ) from None
        return duration

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, timezone: str) -> str:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise _fail(
                f"Unknown time zone {timezone!r}",
                "A schedule's timezone is an IANA time zone name such as Europe/Berlin "
                "or America/New_York.",
                did_you_mean(timezone, _zones(), "Use an IANA name, or UTC."),
            ) from None
        return timezone

    @property
    def seconds(self) -> float | None:
        """The window's length in seconds (None for IMMEDIATE)."""
        return parse_duration(self.duration) if self.duration is not None else None

    def describe(self) -> str:
        """ "IMMEDIATE", or "WINDOW 0 2 * * * for 2h (Europe/Berlin)"."""
        if self.type == "IMMEDIATE":
            return "IMMEDIATE"
        return f"WINDOW {self.cron} for {format_duration(self.seconds or 0)} ({self.timezone})"


def _max_stop_fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise _fail(
            "maxStopFraction out of range",
            f"maxStopFraction is the share of the selected objects one plan may stop or "
            f"delete, between 0.0 and 1.0 (0.2 = 20%); got {value}.",
            "Use a number from 0.0 (never stop) to 1.0 (no limit).",
        )
    return value


def _min_stop_count(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise _fail(
            "minStopCount out of range",
            "minStopCount is how many stopped or deleted objects a plan needs before the "
            f"maxStopFraction guard judges it, 0 or more; got {value}.",
            "Use 0 (the fraction applies to every plan) or a positive count; leave it out "
            "for the daemon's --min-stop-count.",
        )
    return value


class SyncPolicySpec(Strict):
    selector: Selector = Selector()
    schedule: Schedule = Schedule()
    approval: Literal["auto", "manual"] = "auto"
    maxStopFraction: Annotated[float, AfterValidator(_max_stop_fraction)] = 0.2
    # None: the --min-stop-count of the command or daemon that plans.
    minStopCount: Annotated[int | None, AfterValidator(_min_stop_count)] = None
    suspend: bool = False
    # Failure isolation for the documents it selects: an invalid one is held back at
    # its last applied version while the rest of the revision applies. None (unset) is
    # off, and leaves the stored spec as it was before the field existed.
    isolateFailures: bool | None = None


# -- windows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowState:
    """Whether a schedule's window is open at an instant, and its bounds (aware UTC)."""

    open: bool
    opens_at: dt.datetime | None  # open: this window's start; closed: the next one's (None: never)
    closes_at: dt.datetime | None  # the end of that same window


_IMMEDIATE = WindowState(True, None, None)
_MICROSECOND = dt.timedelta(microseconds=1)
# How often `_next_fire` may step past a wrong or nonexistent fire time before it
# gives up: three days of minutes, far more than any DST change-over needs.
_MAX_STEPS = 3 * 24 * 60


def _exists(fire: dt.datetime) -> bool:
    """Whether a fire time's wall clock exists (not in a spring-forward gap)."""
    back = fire.astimezone(UTC).astimezone(fire.tzinfo)
    return back.replace(tzinfo=None) == fire.replace(tzinfo=None)


def _next_fire(trigger: CronTrigger, after: dt.datetime) -> dt.datetime | None:
    """The first fire time at or after `after` (aware UTC), in UTC; None: never again.

    Guards APScheduler's DST behaviour (LIBRARIES.md; apscheduler #1021, #606): an
    answer before `after` is never taken (step a minute forward and ask again), and a
    wall time that does not exist that night is skipped. Compare only in UTC: two
    datetimes in the same ZoneInfo compare by wall clock, ignoring `fold`.
    """
    for _ in range(_MAX_STEPS):
        fire = trigger.get_next_fire_time(None, after)
        if fire is None:
            return None
        fire_utc: dt.datetime = fire.astimezone(UTC)
        if fire_utc < after:
            after = (after + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        elif not _exists(fire):
            after = fire_utc if fire_utc > after else fire_utc + _MICROSECOND
        else:
            return fire_utc
    raise RuntimeError(f"no sane fire time of {trigger} found after {after.isoformat()}")


def window_state(schedule: Schedule, now: dt.datetime) -> WindowState:
    """Whether `schedule` lets changes apply at `now` (timezone-aware), and when.

    A WINDOW is open iff some cron fire time f (in the schedule's time zone) has
    f <= now < f + duration. When windows overlap (a duration longer than the cron's
    period), the window is open from the earliest fire time covering `now` to the
    latest covering fire time + duration; fire times after `now` are not looked at,
    so `closes_at` may move later as the next windows open. Fire times whose wall
    clock does not exist (02:30 on a spring-forward night) are skipped; a wall time
    that happens twice (autumn) opens a window both times, as APScheduler says.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"window_state needs a timezone-aware time, got {now.isoformat()}")
    if schedule.type == "IMMEDIATE":
        return _IMMEDIATE
    if schedule.cron is None or schedule.seconds is None:
        raise ValueError(f"a WINDOW schedule needs cron and duration: {schedule.describe()}")
    trigger = cron_trigger(schedule.cron, schedule.timezone)
    length = dt.timedelta(seconds=schedule.seconds)
    now = now.astimezone(UTC)
    first = _next_fire(trigger, now - length + _MICROSECOND)  # f > now - duration
    if first is None:
        return WindowState(False, None, None)
    if first > now:
        return WindowState(False, first, first + length)
    return WindowState(True, first, _last_fire(trigger, first, now) + length)


def _last_fire(trigger: CronTrigger, first: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The latest fire time in [first, now], `first` being one: bisect the instant to ask
    from (cron fire times are whole minutes, so one second apart is close enough)."""
    following = _next_fire(trigger, first + _MICROSECOND)
    if following is None or following > now:
        return first  # the common case: one window covers now
    low, high = following, now + _MICROSECOND  # next(low) <= now < next(high)
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        fire = _next_fire(trigger, middle)
        if fire is not None and fire <= now:
            low = middle
        else:
            high = middle
    last = _next_fire(trigger, low)
    return last if last is not None and last <= now else following  # (a trigger gone odd)


# -- device queries (the operations API) -------------------------------------------------


def _known_object_kinds() -> list[str]:
    from fleetward.kinds import OBJECT_KINDS  # the registry imports this module

    return sorted(OBJECT_KINDS)


def _object_kind(kind: str) -> str:
    known = _known_object_kinds()
    if kind not in known:
        raise _fail(
            f"Unknown object kind {kind!r}",
            f"A device query picks objects of the kinds {', '.join(known)}.",
            did_you_mean(kind, known, "Use one of the known kinds."),
        )
    return kind


def _same(have: Any, want: Any) -> bool:
    """Equal as JSON values: 1 == 1.0, but true is not 1 and "1" is not 1."""
    if isinstance(have, bool) or isinstance(want, bool):
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    return bool(have == want)


class DeviceQuery(Strict):
    """The operations API's `operation_device_query`: picks objects (AND of all conditions)."""

    kinds: list[
        Annotated[
            str,
            AfterValidator(_object_kind),
            Field(json_schema_extra=lambda schema: schema.update(enum=_known_object_kinds())),
        ]
    ] = Field(default_factory=list)
    # fnmatch globs over object ids (the part after "Kind/")
    names: list[str] = Field(default_factory=list)
    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: list[LabelRequirement] = Field(default_factory=list)
    # Asset attributes: each must equal the value, or be one of a list of values.
    attributes: dict[str, Any] = Field(default_factory=dict)

    def matches(
        self, kind: str, ident: str, labels: Mapping[str, str], spec: Mapping[str, Any]
    ) -> bool:
        """Whether the object `kind/ident` is picked. An object without spec.attributes
        never matches a non-empty `attributes`."""
        if self.kinds and kind not in self.kinds:
            return False
        if not _names_hold(self.names, ident):
            return False
        if not _labels_hold(self.matchLabels, self.matchExpressions, labels):
            return False
        if not self.attributes:
            return True
        have = spec.get("attributes")
        if not isinstance(have, Mapping):
            return False
        for key, want in self.attributes.items():
            if key not in have:
                return False
            choices = want if isinstance(want, list) else [want]
            if not any(_same(have[key], c) for c in choices):
                return False
        return True


class DeviceQueryError(ValueError):
    """A device query that does not validate; `location` like "operation_device_query.kinds[0]"."""

    def __init__(self, message: str, location: str, problem: Problem | None = None) -> None:
        super().__init__(f"{message} ({location})")
        self.message = message
        self.location = location
        self.problem = problem or Problem(message, message, "Fix the query.", location)


_QUERY = "operation_device_query"


def parse_device_query(data: Any) -> DeviceQuery:
    """A device query from a JSON body; {} (or null) matches every object."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problem = Problem(
            f"{_QUERY} must be a JSON object",
            f"Got {type(data).__name__}.",
            'Send an object such as {"kinds": ["Asset"], "names": ["TRK-*"]}.',
            _QUERY,
        )
        raise DeviceQueryError(problem.error, _QUERY, problem)
    try:
        return DeviceQuery.model_validate(data)
    except ValidationError as exc:
        path, _, problem = located_problems(exc, (_QUERY,), DeviceQuery, "a device query")[0]
        location = render_path(path)
        problem = Problem(problem.error, problem.reason, problem.resolution, location)
        message = f"{problem.error}: {problem.reason} {problem.resolution}"
        raise DeviceQueryError(message, location, problem) from None


# -- the kind -------------------------------------------------------------------------


def located_problems(
    exc: ValidationError, prefix: YamlPath, model: type[Strict], what: str
) -> list[PathProblem]:
    """Validation errors as problems, this module's own ones in their own words."""
    generic = validation_problems(exc, prefix, model, what)
    out: list[PathProblem] = []
    for err, (path, is_key, problem) in zip(exc.errors(include_url=False), generic, strict=True):
        if err["type"] == _ERROR_TYPE:
            ctx = err.get("ctx", {})
            problem = Problem(
                str(ctx["error"]),
                str(ctx["reason"]),
                str(ctx["resolution"]),
                parameters={"field": render_path(path)},
            )
        out.append((path, is_key, problem))
    return out


SYNC_POLICY = ObjectKind(
    name="SyncPolicy",
    id_field="metadata.name",
    on_removal=Action.DELETE,
    removal_reason="policy removed from manifests",
)


class SyncPolicyPlugin(KindPlugin):
    kind = "SyncPolicy"
    spec_model = SyncPolicySpec
    object_kinds = (SYNC_POLICY,)

    def schema_problems(
        self, exc: ValidationError, prefix: YamlPath, raw: Any
    ) -> list[PathProblem]:
        return located_problems(exc, prefix, SyncPolicySpec, "a SyncPolicy spec")

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        spec: SyncPolicySpec = document.spec
        yield declare(
            "SyncPolicy", document.name, spec.model_dump(exclude_none=True), document, path
        )


PLUGIN = SyncPolicyPlugin()
