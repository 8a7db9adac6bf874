"""Pydantic validation errors → user-facing Problems, with "did you mean" hints.

Shared by the loader (envelopes and specs) and by kinds that validate nested
data themselves (a workflow step's action config). Pure.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetward.errors import Problem
from fleetward.kinds.names import NAME_RE

YamlPath = tuple[str | int, ...]
# (path inside the document, whether the problem is the key itself, the problem)
PathProblem = tuple[YamlPath, bool, Problem]


def validation_problems(
    exc: ValidationError, prefix: YamlPath, model: type[BaseModel], what: str
) -> list[tuple[YamlPath, bool, Problem]]:
    out: list[tuple[YamlPath, bool, Problem]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = prefix + loc
        shown = render_path(path)
        kind = err["type"]
        value = err.get("input")
        if kind == "missing":
            field_name = str(loc[-1])
            out.append(
                (path[:-1], False, missing_field(field_name, render_path(path[:-1]) or what, "…"))
            )
        elif kind == "extra_forbidden":
            allowed = fields_at(model, loc[:-1])
            parent = render_path(path[:-1])
            out.append((path, True, unknown_field(str(loc[-1]), parent, allowed)))
        elif kind == "string_pattern_mismatch" and path == ("metadata", "name"):
            out.append((path, False, _bad_name(value)))
        else:
            expected = err["msg"].removeprefix("Value error, ")
            out.append(
                (
                    path,
                    False,
                    Problem(
                        f"Invalid value for {shown}",
                        f"{expected}; got {describe(value)}.",
                        _resolution_for(kind, err, value),
                        parameters={"field": shown, "type": kind},
                    ),
                )
            )
    return out


def _resolution_for(kind: str, err: Any, value: Any) -> str:
    if kind == "string_type" and isinstance(value, int | float | bool):
        return f'Quote the value if it is meant as text, e.g. "{value}".'
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = [
            c.strip().strip("'") for c in expected.replace(" or ", ",").split(",") if c.strip()
        ]
        return did_you_mean(str(value), choices, f"Use one of: {expected}.")
    return "Change the value to match the rule above."


def fields_at(model: type[BaseModel], loc: YamlPath) -> list[str]:
    """The field names a model accepts at `loc` (for "did you mean" hints)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        inner = (
            _model_in(current.model_fields[part].annotation)
            if _is_model(current) and part in current.model_fields
            else None
        )
        if inner is None:
            return []
        current = inner
    return sorted(current.model_fields) if _is_model(current) else []


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if _is_model(annotation):
        return annotation  # type: ignore[no-any-return]
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType, dict, typing.Annotated, Sequence):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def missing_field(name: str, where: str, example: str) -> Problem:
    return Problem(
        f'Missing required field "{name}"',
        f'"{name}" is required in {where}.',
        f"Add {name}: {example}" if example != "…" else f'Add "{name}" here.',
        parameters={"field": name},
    )


def unknown_field(name: str, where: str, allowed: Sequence[str]) -> Problem:
    accepts = f" It accepts: {', '.join(allowed)}." if allowed else ""
    return Problem(
        f'Unknown field "{name}"',
        f"There is no field {name!r} in {where}.{accepts}",
        did_you_mean(name, allowed, "Remove the field, or fix its spelling."),
        parameters={"field": name},
    )


def _bad_name(value: Any) -> Problem:
    return Problem(
        f"Invalid metadata.name {value!r}",
        "A name is lower-case letters, digits and '-', starts and ends with a letter or digit, "
        "and is at most 63 characters (like a Kubernetes name).",
        f"Rename it, e.g. {_name_like(value)}.",
        parameters={"field": "metadata.name"},
    )


def _name_like(value: Any) -> str:
    """A valid name close to `value` (North_Yard → north-yard), for the resolution."""
    name = re.sub(r"[^a-z0-9]+", "-", str(value).lower())[:63].strip("-")
    return name if NAME_RE.match(name) else "north-yard"


def did_you_mean(word: str, choices: Sequence[str], otherwise: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f'Did you mean "{close[0]}"?' if close else otherwise


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) < 60 else "a long string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value})"


def render_path(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
