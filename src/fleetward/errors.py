"""The exception tree: every error a user can cause, as structured values.

Each error carries one or more `Problem`s — what went wrong (`error`), why
(`reason`), how to fix it (`resolution`) and where (`location`: a
`file:line:column` or an object address). Errors are rendered only at the
edges (CLI, HTTP, status files); nothing in the engine formats them.

    FleetwardError
    ├── PermanentError            cannot succeed until something changes: not retried
    │   ├── UsageError            a flag or argument the user gave cannot work
    │   ├── ManifestError         YAML or validation errors in a revision (many at once)
    │   ├── PlanError             the plan breaks a kind's rule (e.g. Invalid batch fleet size)
    │   ├── GuardBlocked          a safety guard refused the plan (empty desired set, mass stop)
    │   ├── StalePlanError        a saved plan no longer matches the store
    │   └── UnverifiedRevision    --verify-signatures: the commit is not signed by a trusted key
    ├── TemporaryError(delay)     may succeed as it is, later: retried with backoff
    │   ├── SourceError           the source, ref or path cannot be read
    │   │   └── CorruptObject     a Git object of the revision is damaged or missing
    │   └── StoreError            the state store cannot be read, written or locked
    │       ├── StoreConflict     the store moved since the change set was planned
    │       ├── LockTimeout       another process holds the store's lock
    │       └── StoreUnreachable  the store's server cannot be reached or refused the session
    └── RequestRefused            an operator's request the daemon refuses
        ├── OperationNotFound     no operation has that id
        ├── OperationConflict     the operation's state does not allow the move
        └── Unavailable           the daemon cannot serve it now (log unreadable, stopping)

The retry role is the daemon's concern: a run that ends in a PermanentError
is recorded once and waits for a new revision or an operator's request; a
TemporaryError is retried after its `delay` (or the daemon's backoff). An
error that is neither (a bare FleetwardError) is retried, as a temporary one.
Request refusals carry no HTTP status: the HTTP layer maps them (404, 409, 503).

An OSError becomes one of these in one place, `os_error`: the reason names the
operating system's words and errno, and an errno with a fix of its own (a full
disk, a read-only file system) gets that fix instead of the caller's.
"""

from __future__ import annotations

import datetime as dt
import errno
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Self, TypeVar

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
    may be a date or a mapping with non-string keys: the operation log, status files and
    HTTP API must still serialise them (a non-finite number too, though the YAML reader
    refuses those)."""
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


class PermanentError(FleetwardError):
    """Fails the same way until something changes (a new revision, an operator's request).

    `depends_on_store`: the verdict also reads the store (a guard, a kind's rule over
    stored objects), so a write to the store by someone else is such a change too.
    """

    depends_on_store: bool = False


class TemporaryError(FleetwardError):
    """May succeed if tried again unchanged; `delay`: seconds to wait first (None: backoff)."""

    def __init__(self, *problems: Problem, delay: float | None = None) -> None:
        super().__init__(*problems)
        self.delay = delay


class UsageError(PermanentError):
    """A flag, argument or file given on the command line cannot work."""


class SourceError(TemporaryError):
    """The source repository, ref or manifest path cannot be read."""


class CorruptObject(SourceError):
    """A Git object the revision needs cannot be read in full: never an empty file.

    Raised apart from other source errors so the owner of the repository (fleetward,
    for its mirror of a remote) can repair it and read again."""


class ManifestError(PermanentError):
    """A revision holds invalid YAML or documents; nothing of it is applied.

    `revision` is that revision once the pipeline has opened it: a command that
    reads two (`plan --base`) says which one failed.
    """

    revision: Revision | None = None


class UnverifiedRevision(PermanentError):
    """--verify-signatures refused the revision's commit: unsigned, signed by a key not
    listed, a bad signature, or an expired or revoked key. Nothing of it is applied.

    `revision` is the refused commit, so the daemon waits for a new one (a refusal is
    a verdict on the commit: it stands until the commit or the trusted keys change).
    """

    revision: Revision | None = None


class PlanError(PermanentError):
    """The computed plan breaks a rule of a kind (seed errors such as
    *Invalid batch fleet size* or *Failed batch validation*)."""

    depends_on_store = True


class GuardBlocked(PermanentError):
    """A safety guard refused the plan; a flag can override it."""

    depends_on_store = True


class StalePlanError(PermanentError):
    """A saved plan was made against another store, or the store moved since."""

    depends_on_store = True


class StoreError(TemporaryError):
    """The state store cannot be read, written or locked."""


class StoreConflict(StoreError):
    """A write planned at one lineage and serial met another: nothing was written.

    The fence every store keeps (the serial moves on every write), so two writers
    that planned from the same state never both land."""


class LockTimeout(StoreError):
    """Another process held the store's lock for longer than --lock-timeout."""


class StoreUnreachable(StoreError):
    """A server-backed store cannot be reached, refused the session or lost it (wrong
    credentials, a missing database, a server down or restarting). Retried: a server
    comes back, and credentials are fixed without restarting the daemon."""


class RequestRefused(FleetwardError):
    """An operator's request (create, move, approve an operation) the daemon refuses."""

    @property
    def problem(self) -> Problem:
        """The one problem a refusal carries (an HTTP error body shows one)."""
        return self.problems[0]


class OperationNotFound(RequestRefused):
    """No operation with the requested id is queued, running or kept."""


class OperationConflict(RequestRefused):
    """The operation's state does not allow the requested move (final, writing, not held)."""


class Unavailable(RequestRefused):
    """The daemon cannot serve the request now: its operation log or rejections file is
    unreadable, or it is stopping."""


# -- OSError → FleetwardError ------------------------------------------------------------

E = TypeVar("E", bound=FleetwardError)

# Errnos whose fix is the same wherever they happen: the machine, not the caller's
# flag, is what needs changing. ENOENT, EACCES/EPERM and every other errno get the
# caller's resolution, which knows the flag or file to point elsewhere.
_OWN_RESOLUTION = {
    errno.ENOSPC: "Free space on the file system holding {path}, then run again.",
    errno.EDQUOT: "Free space within this user's disk quota (or raise the quota), then run again.",
    errno.EROFS: "{path} is on a read-only file system: remount it read-write, or use a "
    "writable place.",
    errno.EFBIG: "The file outgrew a size limit (ulimit -f, or the file system's largest "
    "file): raise the limit, then run again.",
    errno.ELOOP: "{path} goes through a symlink loop: replace the symlink with the file or "
    "directory it should name.",
    errno.ENAMETOOLONG: "Use a shorter path.",
}


def os_reason(exc: OSError) -> str:
    """The operating system's words and errno: `No space left on device (errno 28)`."""
    words = exc.strerror or str(exc) or type(exc).__name__
    return f"{words} (errno {exc.errno})" if exc.errno else words


def os_problem(
    exc: OSError,
    what: str,
    resolution: str,
    location: str | os.PathLike[str] | None = None,
    consequence: str = "",
) -> Problem:
    """`exc` as a Problem: `what` failed, the OS's reason, and how to fix it.

    `location` is the path the user can act on (a file, or the directory to make
    writable); `consequence` follows the reason ("Nothing was changed."). The
    errnos of `_OWN_RESOLUTION` replace `resolution` with their own fix.
    """
    where = os.fspath(location) if location is not None else None
    reason = os_reason(exc)
    failed = os.fsdecode(exc.filename) if exc.filename else None
    if failed and not (where and PurePath(failed).is_relative_to(where)):
        reason += f" ({failed})"  # another path than the one named: say which
    own = _OWN_RESOLUTION.get(exc.errno or 0)
    if own is not None:
        resolution = own.format(path=where or failed or "the file")
    return Problem(what, f"{reason}. {consequence}".strip(), resolution, where)


def os_error(
    exc: OSError,
    kind: type[E],
    what: str,
    resolution: str,
    location: str | os.PathLike[str] | None = None,
    consequence: str = "",
) -> E:
    """`os_problem(...)` raised as a `kind` error (UsageError, SourceError, StoreError)."""
    return kind(os_problem(exc, what, resolution, location, consequence))
