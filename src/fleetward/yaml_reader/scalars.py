"""Scalars: YAML 1.2's implicit types and the explicit tags the reader accepts."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any, cast

from ruamel.yaml.resolver import implicit_resolvers
from ruamel.yaml.util import create_timestamp, timestamp_regexp

from fleetward.yaml_reader.errors import INT_MAX, INT_MIN, YamlDataError, short

YAML_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, MERGE = (
    YAML_TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "merge")
)
MAP, SEQ = YAML_TAG + "map", YAML_TAG + "seq"
_NAMED_TAGS = {  # tags refused with a reason of their own
    YAML_TAG + "binary": "binary data has no place in JSON-shaped manifests",
    YAML_TAG + "set": "a set is a mapping of keys to null in YAML, which fleetward does not read",
    YAML_TAG + "omap": "an ordered mapping is a list of one-key mappings in disguise",
    YAML_TAG + "pairs": "a list of pairs is a list of one-key mappings in disguise",
    MERGE: "a merge key is written as a plain `<<`, not as a tag",
    YAML_TAG + "value": "the value key type is not part of YAML 1.2",
    YAML_TAG + "yaml": "the yaml type is not part of YAML 1.2",
}

# YAML 1.2's implicit types (ruamel's own table), by first character of a plain scalar.
IMPLICIT: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _versions, _tag, _regexp, _firsts in implicit_resolvers:
    if (1, 2) in _versions and _tag != YAML_TAG + "value" and _tag != YAML_TAG + "yaml":
        for _first in _firsts:
            IMPLICIT.setdefault(_first, []).append((_tag, cast(re.Pattern[str], _regexp)))
_PATTERN = {tag: regexp for resolvers in IMPLICIT.values() for tag, regexp in resolvers}
_TYPE_NAMES = {
    INT: "an integer",
    FLOAT: "a number",
    BOOL: "a boolean",
    NULL: "null",
    TIMESTAMP: "a date",
}


def _to_int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[:1] == "-" else 1
    digits = digits.lstrip("+-")
    if digits[:2] in ("0b", "0x", "0o"):
        return sign * int(digits[2:], {"0b": 2, "0x": 16, "0o": 8}[digits[:2]])
    return sign * int(digits)


def _to_float(text: str) -> float:
    value = text.replace("_", "").lower()
    sign = -1.0 if value[:1] == "-" else 1.0
    value = value.lstrip("+-")
    if value == ".inf":
        return sign * float("inf")
    if value == ".nan":
        return float("nan")
    return sign * float(value)


def _to_timestamp(text: str) -> dt.date | dt.datetime:
    match = timestamp_regexp.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a YAML timestamp")
    value: dt.date | dt.datetime = create_timestamp(**match.groupdict())
    return value


_CONVERT: dict[str, Callable[[str], Any]] = {
    INT: _to_int,
    FLOAT: _to_float,
    BOOL: lambda text: text.lower() == "true",
    NULL: lambda text: None,
    TIMESTAMP: _to_timestamp,
}


def typed(tag: str, text: str, event: Any) -> Any:
    """The value of a plain scalar resolved to `tag`, or of an explicitly tagged one."""
    if tag == INT and len(text) > 100:
        raise _int_too_large(text, event)
    try:
        value = _CONVERT[tag](text)
    except (ValueError, OverflowError) as exc:
        raise YamlDataError(
            event.start_mark,
            f"Invalid {_TYPE_NAMES[tag].split()[-1]} {short(text)!r}",
            f"YAML reads this value as {_TYPE_NAMES[tag]}, and it is not a valid one ({exc}).",
            "Fix the value, or quote it to keep it as text.",
        ) from None
    if tag == INT and not INT_MIN <= value <= INT_MAX:
        raise _int_too_large(text, event)
    if tag == FLOAT and not math.isfinite(value):
        raise _not_finite(text, event)
    return value


def _int_too_large(text: str, event: Any) -> YamlDataError:
    return YamlDataError(
        event.start_mark,
        "Integer too large",
        f"The integer {short(text)} ({len(text)} characters) does not fit in 64 bits; "
        "manifests hold integers from -2^63 to 2^63-1 (what JSON readers and the store keep exactly).",
        "Quote it to keep it as text, or use a smaller number.",
        limit=INT_MAX,
    )


def _not_finite(text: str, event: Any) -> YamlDataError:
    """`.nan`, `.inf` and their spellings, or a float literal past the largest double:
    JSON has no NaN nor Infinity, so `plan --json`, state.json and the PostgreSQL store's
    JSON columns could not hold the value (Python would write `NaN`, which is no JSON)."""
    why = "manifests are JSON-compatible data, and non-finite numbers have no JSON form."
    if text.lstrip("+-").lower() in (".inf", ".nan"):
        error = f"Non-finite number {short(text)!r}"
        if text.lower() == ".nan":
            meaning = "not-a-number"
        else:
            meaning = "minus infinity" if text.startswith("-") else "infinity"
        reason = f"YAML reads {short(text)} as {meaning}; {why}"
    else:
        error = f"Number too large {short(text)!r}"
        reason = (
            f"The number {short(text)} is beyond the largest 64-bit float (about 1.8e308), so it "
            f"reads as infinity; {why}"
        )
    return YamlDataError(
        event.start_mark,
        error,
        reason,
        "Write a finite number, or quote it if a string was meant.",
    )


def explicit(tag: str, text: str, event: Any) -> Any:
    """A scalar with a tag: the tag must name a YAML 1.2 type the value really has."""
    if tag in ("!", STR):
        return text
    if tag in _CONVERT:
        pattern = _PATTERN[tag]
        fits = pattern.match(text) or (tag == FLOAT and _PATTERN[INT].match(text))
        if not fits:
            raise YamlDataError(
                event.start_mark,
                f"Value does not match its tag !!{tag[len(YAML_TAG) :]}",
                f"The tag says {_TYPE_NAMES[tag]}, but {short(text)!r} is not one in YAML 1.2.",
                "Remove the tag (or quote the value to keep it as text), or write a value of that type.",
            )
        if tag == FLOAT:
            text = str(typed(INT, text, event)) if _PATTERN[INT].match(text) else text
        return typed(tag, text, event)
    raise unsupported_tag(tag, event)


def unsupported_tag(tag: str, event: Any, kind: str = "") -> YamlDataError:
    shown = "!!" + tag[len(YAML_TAG) :] if tag.startswith(YAML_TAG) else tag
    why = _NAMED_TAGS.get(tag)
    if tag in (MAP, SEQ, STR) or tag in _CONVERT:
        why = f"it does not fit {kind or 'this node'}"
    reason = f"The tag {shown} is not supported" + (f": {why}." if why else ".")
    return YamlDataError(
        event.start_mark,
        "Unsupported YAML tag",
        reason + " Manifests hold plain YAML 1.2 data: strings, numbers, booleans, null, "
        "dates, lists and mappings.",
        "Remove the tag: manifests hold plain YAML data only (no tags that build objects).",
        tag=shown,
    )
