"""The operations API's device query: which objects an operation covers.

Like a SyncPolicy's selector, but over objects rather than documents, and with asset
attributes besides labels. The kinds it names are the registry's object kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError

from fleetward.errors import Problem
from fleetward.kinds import OBJECT_KINDS
from fleetward.kinds.base import Strict
from fleetward.kinds.problems import did_you_mean, render_path
from fleetward.kinds.sync_policy import (
    LabelRequirement,
    labels_hold,
    located_problems,
    names_hold,
    spec_error,
)


def _known_object_kinds() -> list[str]:
    return sorted(OBJECT_KINDS)


def _object_kind(kind: str) -> str:
    known = _known_object_kinds()
    if kind not in known:
        raise spec_error(
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
        if not names_hold(self.names, ident):
            return False
        if not labels_hold(self.matchLabels, self.matchExpressions, labels):
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
