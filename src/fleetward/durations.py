"""The one duration grammar: every duration a user writes, in a flag, a variable, a
config file, a manifest or an HTTP body, is read here.

Accepted forms (lowercase units; ISO 8601 in either case):

- a number of seconds: `30`, `1.5` (in text or as a YAML/JSON number);
- one or more `<number><unit>` parts, largest unit first, each unit once:
  `500ms`, `30s`, `10m`, `2h`, `1d`, `1h30m`, `1m30s`, `1.5h`;
- an ISO 8601 duration of days, hours, minutes and seconds: `PT2H`, `P1DT12H`, `PT0.5S`.

Where a place needs a narrower range (a poll interval under a second, a window
longer than a week), it says so with `check_range`, after the grammar accepted
the text: "not a duration" and "too short" are different mistakes.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["FORMS", "check_range", "format_duration", "parse_duration"]

FORMS = "500ms, 30s, 10m, 1h30m, 2h, 1d, PT2H or a number of seconds"
"""The accepted forms, as error messages list them."""

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})\s*(ms|d|h|m|s)\s*")
_BARE = re.compile(rf"^{_NUMBER}$")
_ISO = re.compile(
    rf"^P(?=\d|T\d)(?:({_NUMBER})D)?"
    rf"(?:T(?=\d)(?:({_NUMBER})H)?(?:({_NUMBER})M)?(?:({_NUMBER})S)?)?$",
    re.IGNORECASE,
)


def parse_duration(value: Any) -> float:
    """Seconds of `value` in the grammar above; ValueError (naming the forms) otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        # ValueError, not TypeError: pydantic validators report only ValueErrors as input errors.
        raise ValueError(f"expected a duration such as {FORMS}")  # noqa: TRY004
    if isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    if math.isnan(seconds):
        raise ValueError(f"{_show(value)} is not a number; write a duration such as {FORMS}")
    if seconds < 0:
        raise ValueError(f"{_show(value)} is negative; durations are 0 or more")
    if math.isinf(seconds):
        raise ValueError(f"{_show(value)} is longer than any duration can be")
    return seconds


def _parse_text(text: str) -> float:
    if _BARE.match(text):
        return float(text)
    iso = _ISO.match(text)
    if iso:
        days, hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    total, position, last = 0.0, 0, math.inf
    while position < len(text):
        part = _PART.match(text, position)
        if part is None:
            break
        size = _UNITS[part.group(2)]
        if size >= last:  # 30m1h, 1h1h: not largest unit first, each once
            break
        total, position, last = total + float(part.group(1)) * size, part.end(), size
    if not text or position < len(text):
        raise ValueError(f"{_show(text)} is not a duration; write e.g. {FORMS}")
    return total


def check_range(
    value: Any, seconds: float, minimum: float = 0.0, maximum: float = math.inf
) -> float:
    """`seconds` if `minimum <= seconds <= maximum`; ValueError saying which bound it passes.

    `value` is what the user wrote, quoted back in the message.
    """
    if seconds < minimum:
        raise ValueError(f"{_show(value)} is too short: at least {format_duration(minimum)}")
    if seconds > maximum:
        raise ValueError(f"{_show(value)} is too long: at most {format_duration(maximum)}")
    return seconds


def format_duration(seconds: float) -> str:
    """1h30m for 5400 seconds: the short form, largest unit first, to the millisecond."""
    rest, out = round(seconds * 1000), ""
    for unit in ("d", "h", "m", "s", "ms"):
        count, rest = divmod(rest, round(_UNITS[unit] * 1000))
        out += f"{count}{unit}" if count else ""
    return out or "0s"


def _show(value: Any) -> str:
    """`value` quoted back, cut short: a message must not repeat a megabyte of input."""
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "…" + text[-3:]
