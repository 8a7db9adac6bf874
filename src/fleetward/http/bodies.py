"""Request bodies of the operations API, checked into values (ConvergeRequest, state moves).

Every refusal is a `BadRequest` carrying the Problem to answer 400 with, located
(`body.arguments.timeout`); nothing here touches the daemon.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetward.daemon.control import SETTABLE_STATES, ConvergeRequest
from fleetward.durations import parse_duration
from fleetward.errors import Problem
from fleetward.kinds.sync_policy import DeviceQueryError, parse_device_query
from fleetward.operations import OperationState
from fleetward.timestamps import to_iso

CREATE_FIELDS = (
    "operation_type",
    "schedule_type",
    "schedule_args",
    "operation_device_query",
    "arguments",
)
SCHEDULE_TYPES = ("IMMEDIATE", "WINDOW")
WINDOW_FIELDS = ("start", "end")
ARGUMENT_FIELDS = ("dryRun", "allowMassStop", "timeout")
STATE_FIELDS = ("state", "reason")
APPROVE_FIELDS = ("by", "comment")
MAX_REASON = 1000
MAX_NAME = 200
# An operation that may wait longer than a week is a forgotten one, not a slow one.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600.0
CREATE_EXAMPLE = '{"operation_type": "CONVERGE", "schedule_type": "IMMEDIATE"}'


class BadRequest(Exception):
    """A body the API refuses (400): the problem to answer with."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.error)
        self.problem = problem

    @classmethod
    def at(cls, location: str, what: str, reason: str, resolution: str) -> BadRequest:
        return cls(Problem(what, reason, resolution, location))


@dataclass(frozen=True, slots=True)
class StateChange:
    """A checked PUT /v0/operations/{id}/ body."""

    state: OperationState
    reason: str


@dataclass(frozen=True, slots=True)
class Approval:
    """A checked POST /v0/operations/{id}/approve body."""

    by: str
    comment: str


def parse_json(body: bytes, example: str) -> Any:
    """The JSON value of `body`; an empty body is `{}`. NaN, Infinity and text that
    cannot be encoded back (lone surrogates) are refused: responses could not carry them."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        value = json.loads(body or b"{}", parse_constant=no_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise BadRequest.at(
            "body",
            "Request body is nested too deeply",
            "JSON nesting passes the parser's limit.",
            f"Send a flat JSON object, e.g. {example}.",
        ) from None
    except UnicodeError as exc:
        raise BadRequest.at(
            "body",
            "Request body is not valid UTF-8 text",
            f"{exc}.",
            "Send UTF-8 encoded JSON without lone surrogates.",
        ) from None
    except ValueError as exc:
        raise BadRequest.at(
            "body", "Request body is not JSON", f"{exc}.", f"Send a JSON object, e.g. {example}."
        ) from None
    return value


def parse_create(data: Any, now: dt.datetime) -> ConvergeRequest:
    """The POST /v0/operations/ body as a ConvergeRequest (window times in UTC)."""
    body = _object(data, "body", CREATE_EXAMPLE)
    _known(body, CREATE_FIELDS, "body")
    if "operation_type" not in body:
        raise BadRequest.at(
            "body.operation_type",
            "operation_type is required",
            "Every operation names its type; fleetward has one: CONVERGE.",
            'Send "operation_type": "CONVERGE".',
        )
    if body["operation_type"] != "CONVERGE":
        raise BadRequest.at(
            "body.operation_type",
            "Invalid operation_type",
            f'operation_type must be "CONVERGE"; got {_show(body["operation_type"])}.',
            'Send "operation_type": "CONVERGE".',
        )
    schedule = body.get("schedule_type", "IMMEDIATE")
    if schedule is None:
        schedule = "IMMEDIATE"
    if schedule not in SCHEDULE_TYPES:
        raise BadRequest.at(
            "body.schedule_type",
            "Invalid schedule_type",
            f"schedule_type must be IMMEDIATE or WINDOW; got {_show(schedule)}.",
            'Send "schedule_type": "IMMEDIATE" (run now) or "WINDOW" with schedule_args '
            '{"start", "end"}.',
        )
    start = end = None
    args = body.get("schedule_args")
    if schedule == "WINDOW":
        start, end = _window(args, now)
    elif args not in (None, {}):
        raise BadRequest.at(
            "body.schedule_args",
            "schedule_args is only for WINDOW operations",
            "An IMMEDIATE operation runs now; a window would be ignored.",
            'Drop schedule_args, or send "schedule_type": "WINDOW".',
        )
    query = _query(body.get("operation_device_query"))
    given = body.get("arguments")
    arguments = _object({} if given is None else given, "body.arguments", '{"dryRun": true}')
    _known(arguments, ARGUMENT_FIELDS, "body.arguments")
    return ConvergeRequest(
        schedule_type=str(schedule),
        window_start=start,
        window_end=end,
        query=query,
        dry_run=_flag(arguments, "dryRun"),
        allow_mass_stop=_flag(arguments, "allowMassStop"),
        timeout=_timeout(arguments.get("timeout")),
    )


def parse_state_change(data: Any) -> StateChange:
    """The PUT body: `state` of the seed's enum (FAILED means FAILURE), an optional reason."""
    body = _object(data, "body", '{"state": "CANCELLED", "reason": "User requested"}')
    _known(body, STATE_FIELDS, "body")
    state = body.get("state")
    if state not in SETTABLE_STATES:
        raise BadRequest.at(
            "body.state",
            "state is required" if state is None else "Invalid state",
            f"state must be one of {', '.join(SETTABLE_STATES)}"
            + ("." if state is None else f"; got {_show(state)}."),
            'Send e.g. {"state": "CANCELLED", "reason": "User requested"}.',
        )
    reason = _text(body.get("reason"), "body.reason", MAX_REASON)
    target = OperationState.FAILURE if state == "FAILED" else OperationState[str(state)]
    return StateChange(target, reason)


def parse_approval(data: Any) -> Approval:
    """The approve body (may be empty): who approves ("api" unless said) and why."""
    body = _object(data, "body", '{"by": "alice", "comment": "reviewed the plan"}')
    _known(body, APPROVE_FIELDS, "body")
    by = _text(body.get("by"), "body.by", MAX_NAME).strip() or "api"
    return Approval(by, _text(body.get("comment"), "body.comment", MAX_REASON))


# -- parts -----------------------------------------------------------------------------------------


def _object(value: Any, location: str, example: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest.at(
            location,
            f"{location} is not a JSON object",
            f"Expected an object; got {_kind(value)}.",
            f"Send e.g. {example}.",
        )
    return value


def _known(data: Mapping[str, Any], allowed: tuple[str, ...], location: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    raise BadRequest.at(
        f"{location}.{name}",
        f"Unknown field {name!r}",
        f"{location} takes {', '.join(allowed)}.",
        f"{hint}Remove or rename the field.",
    )


def _window(args: Any, now: dt.datetime) -> tuple[str, str]:
    example = '{"start": "2030-01-01T22:00:00Z", "end": "2030-01-02T04:00:00Z"}'
    if args is None:
        raise BadRequest.at(
            "body.schedule_args",
            "schedule_args is required for a WINDOW operation",
            "A WINDOW operation applies only between schedule_args.start and .end.",
            f'Send "schedule_args": {example}.',
        )
    window = _object(args, "body.schedule_args", example)
    _known(window, WINDOW_FIELDS, "body.schedule_args")
    start = _instant(window.get("start"), "body.schedule_args.start")
    end = _instant(window.get("end"), "body.schedule_args.end")
    if end <= start:
        raise BadRequest.at(
            "body.schedule_args.end",
            "The window ends before it starts",
            f"end {to_iso(end)} is not after start {to_iso(start)}.",
            "Send an end after the start.",
        )
    if end <= now:
        raise BadRequest.at(
            "body.schedule_args.end",
            "The window is over",
            f"end {to_iso(end)} is in the past (now {to_iso(now)}).",
            "Send a window that ends in the future.",
        )
    return to_iso(start), to_iso(end)


def _instant(value: Any, location: str) -> dt.datetime:
    field = location.rsplit(".", 1)[1]
    if value is None:
        raise BadRequest.at(
            location,
            f"schedule_args.{field} is required",
            "A window needs both its start and its end.",
            f'Send "{field}" as ISO 8601 with a time zone, e.g. 2030-01-01T22:00:00Z.',
        )
    try:
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(dt.UTC).replace(microsecond=0)
    except (ValueError, OverflowError):
        pass
    raise BadRequest.at(
        location,
        f"Invalid schedule_args.{field}",
        f"{_show(value)} is not an ISO 8601 date-time with a time zone.",
        "Write e.g. 2030-01-01T22:00:00Z or 2030-01-01T23:00:00+01:00.",
    )


def _query(value: Any) -> Mapping[str, Any]:
    if value is None or value == {}:
        return {}
    _object(value, "body.operation_device_query", '{"kinds": ["Asset"], "names": ["TRK-*"]}')
    try:
        query = parse_device_query(value)
    except DeviceQueryError as exc:
        p = exc.problem
        raise BadRequest(
            Problem(p.error, p.reason, p.resolution, f"body.{exc.location}", p.parameters)
        ) from None
    dumped: Mapping[str, Any] = query.model_dump()
    return dumped


def _flag(arguments: Mapping[str, Any], name: str) -> bool:
    value = arguments.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest.at(
            f"body.arguments.{name}",
            f"Invalid arguments.{name}",
            f"{name} must be true or false; got {_show(value)}.",
            f'Send "{name}": true.',
        )
    return value


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)  # a number of seconds, or "90s", "1h30m", "PT2H"
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= MAX_TIMEOUT_SECONDS):
        raise BadRequest.at(
            "body.arguments.timeout",
            "Invalid arguments.timeout",
            f"timeout must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g} seconds "
            f"(7 days); got {_show(value)}.",
            'Send seconds (600) or a duration ("90s", "10m", "1h30m").',
        )
    return seconds


def _text(value: Any, location: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest.at(
            location,
            f"Invalid {location.removeprefix('body.')}",
            f"Expected a string; got {_kind(value)}.",
            "Send text.",
        )
    if len(value) > limit:
        raise BadRequest.at(
            location,
            f"{location.removeprefix('body.')} is too long",
            f"{len(value)} characters; at most {limit}.",
            "Shorten it.",
        )
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
