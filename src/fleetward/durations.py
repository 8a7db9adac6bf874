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

__all__ = ["FORMS", "bounded_pattern", "check_range", "format_duration", "parse_duration"]

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


def bounded_pattern(maximum: float) -> str:
    """A regex, the same in Python and ECMA 262 (JSON Schema), of durations in (0, maximum].

    Every text it matches is one `parse_duration` reads as more than 0 and at most
    `maximum` seconds, so a schema that states it never allows what the reader refuses.
    A regex cannot add up parts of any precision, so it states the part of the grammar
    whose bound it can check: one part of any precision (`1.5h`, `90 s`, `600`,
    `PT0.5S`), or several whole-number parts in the clock's own ranges below a
    leading part (`1h30m`, `1d12h`, `2m30s500ms`, `P1DT12H`, `PT1H30M`).
    """
    largest = [(unit, math.floor(maximum / size)) for unit, size in _UNITS.items()]
    single = [f"(?:{_positive_up_to(count)}) *{unit}" for unit, count in largest if count >= 1]
    single.append(f"(?:{_positive_up_to(math.floor(maximum))})")  # a bare number of seconds
    units = list(_UNITS)
    several = [
        f"{_whole_up_to(count - 1)} *{unit} *"
        + "".join(f"(?:{_below(lower)} *{lower} *)?" for lower in units[i + 1 :])
        for i, (unit, count) in enumerate(largest[:-1])
        if count >= 2
    ]
    iso = [
        f"[Pp](?:{_positive_up_to(count)})[Dd]"
        if unit == "d"
        else f"[Pp][Tt](?:{_positive_up_to(count)}){_either_case(unit)}"
        for unit, count in largest
        if unit != "ms" and count >= 1
    ]
    clock = ["h", "m", "s"]
    iso += [
        f"[Pp]{_whole_up_to(count - 1)}[Dd](?:[Tt]{_iso_chain(clock)})?"
        if unit == "d"
        else f"[Pp][Tt]{_whole_up_to(count - 1)}{_either_case(unit)}"
        + "".join(f"(?:{_below(lower)}{_either_case(lower)})?" for lower in clock[i:])
        for i, (unit, count) in enumerate(largest[:3])
        if count >= 2
    ]
    texts = " *|".join(f"(?:{p})" for p in single + several)
    return f"^(?: *(?:{texts}) *|{'|'.join(f'(?:{p})' for p in iso)})$"


def _positive_up_to(bound: int) -> str:
    """A regex for decimal numbers in (0, bound]: `0.5`, `7`, `007.25`, `bound.0`."""
    fraction = r"(?:\.[0-9]{1,17})?"  # bounded: a longer one could round to 0 or past bound
    whole = _whole_up_to(bound - 1, empty=True)  # empty when bound is 1
    below = f"(?:{whole}){fraction}|" if whole else ""
    return rf"0*(?:{below}{bound}(?:\.0{{1,17}})?)|0+\.[0-9]{{0,16}}[1-9][0-9]{{0,16}}"


def _whole_up_to(bound: int, empty: bool = False) -> str:
    """A regex for the whole numbers 1 to `bound`, without leading zeros."""
    digits = str(bound)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else ""
    same = [
        digits[:i] + f"[{1 if i == 0 else 0}-{int(d) - 1}]" + "[0-9]" * (len(digits) - i - 1)
        for i, d in enumerate(digits)
        if int(d) > (1 if i == 0 else 0)
    ]
    numbers = "|".join([p for p in (shorter, *same, digits) if p and p != "0"])
    if empty:
        return numbers
    return f"(?:{numbers})"


# How many of a unit make the next larger one: the range of a part below a leading one.
_RATIO = {"h": 24, "m": 60, "s": 60, "ms": 1000}


def _below(unit: str) -> str:
    """A whole number of `unit` below one of the next larger unit (0-59 minutes)."""
    return f"0*(?:0|{_whole_up_to(_RATIO[unit] - 1)})"


def _either_case(unit: str) -> str:
    return f"[{unit.upper()}{unit}]"


def _iso_chain(units: list[str]) -> str:
    """ISO parts after `T`: at least one, in order, each in its clock range."""
    return "(?:" + "|".join(
        f"{_below(first)}{_either_case(first)}"
        + "".join(f"(?:{_below(lower)}{_either_case(lower)})?" for lower in units[i + 1 :])
        for i, first in enumerate(units)
    ) + ")"


def _show(value: Any) -> str:
    """`value` quoted back, cut short: a message must not repeat a megabyte of input."""
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "…" + text[-3:]
