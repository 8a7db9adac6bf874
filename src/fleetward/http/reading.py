"""Requests read with the contract's models; what they refuse as the 400 error body.

A `Reader` decodes a JSON body (or takes the query parameters) and validates it; every
refusal is a `BadRequest` carrying the Problem to answer with, located in the request
(`body.arguments.timeout`, `query.limit`).
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from fleetward.errors import Problem
from fleetward.kinds.problems import render_path

T = TypeVar("T")
Path = tuple[str | int, ...]
_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


class BadRequest(Exception):
    """A body the API refuses (400): the problem to answer with."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.error)
        self.problem = problem


class Reader(Generic[T]):
    """How one endpoint reads its body (or query): the model or discriminated union of
    models, an example for resolutions, the union's members by tag (a tag heads the path
    of every error inside a member; it is no part of the request), and where the values
    come from (`body`, `query`)."""

    def __init__(
        self,
        shape: Any,
        example: str,
        members: Mapping[str, type[BaseModel]] | None = None,
        where: str = "body",
    ) -> None:
        self.shape = shape
        self.example = example
        self.members = dict(members or {})
        self.where = where
        self.adapter: TypeAdapter[T] = TypeAdapter(shape)

    def read(self, raw: bytes, context: dict[str, Any] | None = None) -> T:
        """`raw` (empty: `{}`) validated; BadRequest names the first fault."""
        return self.check(parse_json(raw, self.example), context)

    def check(self, data: Any, context: dict[str, Any] | None = None) -> T:
        try:
            return self.adapter.validate_python(data, context=context)
        except ValidationError as exc:
            raise BadRequest(self.refusal(exc)) from None

    def refusal(self, exc: ValidationError) -> Problem:
        """The first fault as the problem to answer (an unknown field first: a misspelt
        name explains the rest)."""
        errors = exc.errors(include_url=False)
        first = min(errors, key=lambda err: err["type"] != "extra_forbidden")
        loc = tuple(first["loc"])
        if loc and loc[0] in self.members:
            model: Any = self.members[str(loc[0])]
            loc = loc[1:]
        else:
            model = self.shape
        return _problem(first, loc, model, self.example, self.where)


def parse_json(body: bytes, example: str) -> Any:
    """The JSON value of `body`; an empty body is `{}`. NaN, Infinity and text that
    cannot be encoded back (lone surrogates) are refused: responses could not carry them."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        value = json.loads(body or b"{}", parse_constant=no_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise BadRequest(
            Problem(
                "Request body is nested too deeply",
                "JSON nesting passes the parser's limit.",
                f"Send a flat JSON object, e.g. {example}.",
                "body",
            )
        ) from None
    except UnicodeError as exc:
        raise BadRequest(
            Problem(
                "Request body is not valid UTF-8 text",
                f"{exc}.",
                "Send UTF-8 encoded JSON without lone surrogates.",
                "body",
            )
        ) from None
    except ValueError as exc:
        raise BadRequest(
            Problem(
                "Request body is not JSON",
                f"{exc}.",
                f"Send a JSON object, e.g. {example}.",
                "body",
            )
        ) from None
    return value


def _problem(err: ErrorDetails, path: Path, shape: Any, example: str, where: str) -> Problem:
    kind, value = err["type"], err.get("input")
    context = err.get("ctx") or {}
    shown = render_path(path) or where
    location = f"{where}.{shown}" if path else where
    parent, info = _field_at(shape, path)
    example = _example(info.annotation if info else None) or _example(parent) or example
    if {"error", "reason", "resolution"} <= set(context):
        at = str(context.get("at") or "")
        return Problem(
            str(context["error"]) or f"Invalid {shown}",
            str(context["reason"]),
            str(context["resolution"]),
            f"{location}.{at}" if at else location,
        )
    if kind == "extra_forbidden":
        name = str(path[-1])
        allowed = sorted(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        holder = f"{where}.{render_path(path[:-1])}" if len(path) > 1 else where
        return Problem(
            f"Unknown {'query parameter' if where == 'query' else 'field'} {name!r}",
            f"{holder} takes {', '.join(allowed)}.",
            f"{hint}Remove or rename the field.",
            location,
        )
    if kind == "missing":
        about = f" {info.description}" if info is not None and info.description else ""
        return Problem(
            f"{shown} is required",
            f"{location} must be given.{about}",
            f"Send e.g. {example}.",
            location,
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return Problem(
            f"{location} is not a JSON object",
            f"Expected an object; got {_kind(value)}.",
            f"Send e.g. {example}.",
            location,
        )
    if kind == "string_too_long":
        return Problem(
            f"{shown} is too long",
            f"{len(str(value))} characters; at most {context.get('max_length')}.",
            "Shorten it.",
            location,
        )
    expected = context.get("expected")
    return Problem(
        f"Invalid {shown}",
        (f"{shown} must be {expected}" if expected else err["msg"]) + f"; got {_show(value)}.",
        f"Send e.g. {example}.",
        location,
    )


def _field_at(shape: Any, path: Path) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The innermost model on `path`, and its field the path ends at (None: not a field)."""
    model, info = _model_in(shape), None
    for part in path:
        if isinstance(part, int):
            continue  # an item of a list: its model is the list's
        if info is not None:
            inner = _model_in(info.annotation)
            if inner is None:
                break
            model = inner
        if model is None or part not in model.model_fields:
            return model, None
        info = model.model_fields[part]
    return model, info


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: itself, or inside Optional, list or Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _example(shape: Any) -> str | None:
    """The first example a model's schema shows, as JSON."""
    model = _model_in(shape)
    extra = model.model_config.get("json_schema_extra") if model is not None else None
    examples = extra.get("examples") if isinstance(extra, dict) else None
    return json.dumps(examples[0]) if isinstance(examples, list) and examples else None


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), "a number")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
