"""When a SyncPolicy's window is open: cron fire times over wall clocks, DST included.

The schedule itself is validated in the kind (`fleetward.kinds.sync_policy`); here is
the date arithmetic decisions, plans and metrics ask of it at an instant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

from fleetward.kinds.sync_policy import Schedule, cron_trigger

UTC = dt.UTC


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
