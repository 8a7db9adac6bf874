"""The exception tree: every error a user can cause, as structured values.

Each error carries one or more `Problem`s — what went wrong (`error`), why
(`reason`), how to fix it (`resolution`) and where (`location`: a
`file:line:column` or an object address). Errors are rendered only at the
edges (CLI, HTTP, status files); nothing in the engine formats them.

    FleetwardError
    ├── UsageError            a flag or argument the user gave cannot work
    ├── SourceError           the source, ref or path cannot be read
    ├── ManifestError         YAML or validation errors in a revision (many at once)
    ├── PlanError             the plan breaks a kind's rule (e.g. Invalid batch fleet size)
    ├── GuardBlocked          a safety guard refused the plan (empty desired set, mass stop)
    ├── StalePlanError        a saved plan no longer matches the store
    └── StoreError            the state store cannot be read, written or locked
        └── LockTimeout       another process holds the store's lock
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class Problem:
    """One diagnostic: what, why, how to fix, where."""

    error: str
    reason: str
    resolution: str
    location: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    # The offending source line with a caret under the column, when known.
    snippet: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of DESIGN §5 (the snippet is for terminals only)."""
        fields = ("error", "reason", "resolution", "location")
        parameters = {str(k): _json_value(v) for k, v in self.parameters.items()}
        return {f: getattr(self, f) for f in fields} | {"parameters": parameters}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        """A problem read back from its JSON shape (status files, the operation log)."""
        return cls(
            str(data.get("error", "")),
            str(data.get("reason", "")),
            str(data.get("resolution", "")),
            data.get("location"),
            dict(data.get("parameters") or {}),
        )


def _json_value(value: Any) -> Any:
    """A parameter as strict JSON. Parameters often quote the manifest's own value, which
    may be a date, a mapping with non-string keys or `.nan`: the operation log, status
    files and HTTP API must still serialise them (non-finite numbers included)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class FleetwardError(Exception):
    """Root of every error fleetward reports to a user."""

    def __init__(self, *problems: Problem) -> None:
        if not problems:
            raise ValueError("a FleetwardError needs at least one problem")
        self.problems: tuple[Problem, ...] = problems
        first = problems[0]
        where = f" ({first.location})" if first.location else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.error}{where}: {first.reason}{more}")

    @classmethod
    def one(
        cls,
        error: str,
        reason: str,
        resolution: str,
        location: str | None = None,
        **parameters: Any,
    ) -> Self:
        return cls(Problem(error, reason, resolution, location, parameters))


class UsageError(FleetwardError):
    """A flag, argument or file given on the command line cannot work."""


class SourceError(FleetwardError):
    """The source repository, ref or manifest path cannot be read."""


class ManifestError(FleetwardError):
    """A revision holds invalid YAML or documents; nothing of it is applied."""


class PlanError(FleetwardError):
    """The computed plan breaks a rule of a kind (seed errors such as
    *Invalid batch fleet size* or *Failed batch validation*)."""


class GuardBlocked(FleetwardError):
    """A safety guard refused the plan; a flag can override it."""


class StalePlanError(FleetwardError):
    """A saved plan was made against another store, or the store moved since."""


class StoreError(FleetwardError):
    """The state store cannot be read, written or locked."""


class LockTimeout(StoreError):
    """Another process held the store's lock for longer than --lock-timeout."""
