"""The one time module: the clock, and instants as fleetward writes and reads them.

Every instant fleetward writes (operations, status files, plans, log lines,
API bodies) is UTC ISO 8601 with a `Z`: `2030-01-01T22:00:00Z`, to the second.
Two places keep the sub-second part because their consumers expect it: task
date-times (`auto`: milliseconds when there are any, as the seed's responses
show them) and JSON log lines (`milliseconds`, always). Reading user-written
date-times with their own error messages stays with the kinds that define them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal, overload

__all__ = ["UTC", "Clock", "Precision", "from_epoch", "now", "now_iso", "parse_iso", "to_iso"]

UTC = dt.UTC
Clock = Callable[[], dt.datetime]
"""What tells the time: `now` in production, a settable fake in tests."""
Precision = Literal["seconds", "milliseconds", "auto"]


def now() -> dt.datetime:
    """The current instant, timezone-aware, in UTC."""
    return dt.datetime.now(UTC)


@overload
def to_iso(moment: dt.datetime, precision: Precision = "seconds") -> str: ...
@overload
def to_iso(moment: None, precision: Precision = "seconds") -> None: ...
@overload
def to_iso(moment: dt.datetime | None, precision: Precision = "seconds") -> str | None: ...
def to_iso(moment: dt.datetime | None, precision: Precision = "seconds") -> str | None:
    """`moment` as UTC ISO 8601 with `Z`; None stays None (an instant not reached yet)."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    fraction = precision == "milliseconds" or (precision == "auto" and moment.microsecond)
    return moment.isoformat(timespec="milliseconds" if fraction else "seconds").replace(
        "+00:00", "Z"
    )


def now_iso() -> str:
    """The current instant as fleetward writes it."""
    return to_iso(now())


def parse_iso(text: str) -> dt.datetime:
    """An instant fleetward wrote (`...Z`, or an offset) as an aware datetime; ValueError
    if it is none. One without a zone is taken as UTC: fleetward writes only UTC."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


@overload
def from_epoch(seconds: float) -> dt.datetime: ...
@overload
def from_epoch(seconds: None) -> None: ...
@overload
def from_epoch(seconds: float | None) -> dt.datetime | None: ...
def from_epoch(seconds: float | None) -> dt.datetime | None:
    """A POSIX timestamp (`time.time()`, a log record's `created`) as an aware UTC datetime."""
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, UTC)
