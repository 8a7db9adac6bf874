"""The exception tree: every error a user can cause, as structured values.

Each error carries one or more `Problem`s — what went wrong (`error`), why
(`reason`), how to fix it (`resolution`) and where (`location`: a
`file:line:column` or an object address). Errors are rendered only at the
edges (CLI, HTTP, status files); nothing in the engine formats them.

    FleetwardError
    ├── UsageError            a flag or argument the user gave cannot work
    ├── SourceError           the source, ref or path cannot be read
    │   └── CorruptObject     a Git object of the revision is damaged or missing
    ├── ManifestError         YAML or validation errors in a revision (many at once)
    ├── PlanError             the plan breaks a kind's rule (e.g. Invalid batch fleet size)
    ├── GuardBlocked          a safety guard refused the plan (empty desired set, mass stop)
    ├── StalePlanError        a saved plan no longer matches the store
    └── StoreError            the state store cannot be read, written or locked
        ├── StoreConflict     the store moved since the change set was planned
        └── LockTimeout       another process holds the store's lock
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # for annotations only: the model imports this module
    from fleetward.model import Revision


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
        return {f: getattr(self, f) for f in fields} | {"parameters": dict(self.parameters)}

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


class CorruptObject(SourceError):
    """A Git object the revision needs cannot be read in full: never an empty file.

    Raised apart from other source errors so the owner of the repository (fleetward,
    for its mirror of a remote) can repair it and read again."""


class ManifestError(FleetwardError):
    """A revision holds invalid YAML or documents; nothing of it is applied.

    `revision` is that revision once the pipeline has opened it: a command that
    reads two (`plan --base`) says which one failed.
    """

    revision: Revision | None = None


class PlanError(FleetwardError):
    """The computed plan breaks a rule of a kind (seed errors such as
    *Invalid batch fleet size* or *Failed batch validation*)."""


class GuardBlocked(FleetwardError):
    """A safety guard refused the plan; a flag can override it."""


class StalePlanError(FleetwardError):
    """A saved plan was made against another store, or the store moved since."""


class StoreError(FleetwardError):
    """The state store cannot be read, written or locked."""


class StoreConflict(StoreError):
    """A write planned at one lineage and serial met another: nothing was written.

    The fence every store keeps (the serial moves on every write), so two writers
    that planned from the same state never both land."""


class LockTimeout(StoreError):
    """Another process held the store's lock for longer than --lock-timeout."""
