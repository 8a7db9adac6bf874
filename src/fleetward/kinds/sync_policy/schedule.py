"""A SyncPolicy's schedule: IMMEDIATE, or WINDOWs opened by a crontab expression.

The model validates the cron, duration and time zone at load time; when a window is
open is a question of the engine's (`fleetward.policy.window_state`), which reads
the trigger `cron_trigger` builds here.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Literal

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from pydantic import Field, ValidationInfo, field_validator

from fleetward.durations import check_range, format_duration, parse_duration
from fleetward.kinds.base import Strict
from fleetward.kinds.problems import did_you_mean
from fleetward.kinds.sync_policy.wording import spec_error

UTC = dt.UTC
MAX_DURATION = dt.timedelta(days=7)
# Windows open on cron's minutes; one shorter than a second cannot be told from closed.
MIN_WINDOW = dt.timedelta(seconds=1)

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
        raise spec_error(
            "Invalid cron expression",
            f"{cron!r}: {str(exc).rstrip('.')}.",
            'Write five fields, minute hour day-of-month month day-of-week, e.g. "0 2 * * *" '
            '(every day at 02:00) or "30 1 * * sat,sun".',
        ) from exc
    if trigger.get_next_fire_time(None, _EPOCH) is None:
        raise spec_error(
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
            raise spec_error(
                "WINDOW schedule without cron",
                "A WINDOW schedule opens at the times a cron expression names, and this "
                "one names none.",
                'Add cron: "0 2 * * *" (minute hour day-of-month month day-of-week), '
                "or use type: IMMEDIATE.",
            )
        if cron is not None and kind == "IMMEDIATE":
            raise spec_error(
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
            raise spec_error(
                "WINDOW schedule without duration",
                "A WINDOW schedule stays open for a duration after each cron fire time, "
                "and this one gives none.",
                "Add duration: 2h (or 90m, 1h30m, PT2H).",
            )
        if duration is not None and kind == "IMMEDIATE":
            raise spec_error(
                "duration on an IMMEDIATE schedule",
                "An IMMEDIATE schedule has no window, so a duration means nothing there.",
                "Remove duration, or set type: WINDOW.",
            )
        if duration is None:
            return None
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise spec_error(
                "Invalid duration",
                f"{exc}.",
                "Write a duration such as 2h, 90m, 1h30m, 45s or PT2H.",
            ) from None
        try:
            check_range(duration, seconds, MIN_WINDOW.total_seconds(), MAX_DURATION.total_seconds())
        except ValueError as exc:
            raise spec_error(
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
            raise spec_error(
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
