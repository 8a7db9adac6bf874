"""Suspension: the operator's switch that stops applies, kept by the store.

While a suspension is kept the daemon still fetches, plans and reports at every
run, but writes nothing; `fleetward suspend` sets it, `fleetward resume` lifts
it. Kept in the store (not sent over HTTP) so it works with the daemon stopped
and survives restarts: a state directory keeps `<state-dir>/suspend.json` (the
functions here), a PostgreSQL store one row every replica reads (`pg_pin`);
`Store.suspension` and `Store.set_suspension` reach either.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from fleetward.errors import StoreError, UsageError, os_error
from fleetward.store.files import write_atomic

logger = logging.getLogger(__name__)

SUSPEND_FILE = "suspend.json"


@dataclass(frozen=True, slots=True)
class Suspension:
    """Who suspended applies, when (ISO 8601 UTC) and why."""

    by: str
    at: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Suspension:
        wrong = [name for name in ("by", "at", "reason") if not isinstance(data.get(name), str)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} must be a string")
        return cls(by=data["by"], at=data["at"], reason=data["reason"])


def read_suspension(state_dir: Path) -> Suspension | None:
    """The suspension in force, or None. StoreError (located) if the file is corrupt."""
    path = Path(state_dir) / SUSPEND_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, StoreError, _CANNOT_READ.format(path), _FIX_OR_RESUME, path) from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _unreadable(path, f"Not JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise _unreadable(path, "It holds no JSON object.")
    try:
        return Suspension.from_dict(data)
    except ValueError as exc:
        raise _unreadable(path, f"{exc}.") from exc


UNREADABLE = Suspension(
    "an unreadable suspension",
    "unknown",
    "it could not be read; fix it, or remove it with fleetward resume",
)


class Suspensions(Protocol):
    """Where the suspension is kept (`Store.suspension`)."""

    def suspension(self) -> Suspension | None: ...


@dataclass(frozen=True, slots=True)
class SuspendFile:
    """A state directory's `suspend.json` as `Suspensions`, for code given a directory
    rather than a store (the TinyDB store reads the same file)."""

    state_dir: Path

    def suspension(self) -> Suspension | None:
        return read_suspension(self.state_dir)


@dataclass(frozen=True, slots=True)
class StoreOrFile:
    """The suspension of a store kept outside the state directory (`--store`), else a
    `suspend.json` in the state directory: a `fleetward suspend` given only the
    daemon's --state-dir still holds it. A safety switch errs on the side of holding."""

    store: Suspensions
    state_dir: Path

    def suspension(self) -> Suspension | None:
        return self.store.suspension() or read_suspension(self.state_dir)


def current_suspension(kept: Suspensions) -> Suspension | None:
    """The suspension the daemon obeys: one that cannot be read (a damaged file, an
    unreachable database) must not unsuspend, so it counts as a suspension
    (UNREADABLE), loudly."""
    try:
        return kept.suspension()
    except StoreError as exc:
        logger.error("cannot read the suspension: %s", exc)
        return UNREADABLE


def write_suspension(state_dir: Path, suspension: Suspension) -> None:
    """Suspend applies (atomically; replaces an earlier suspension)."""
    directory = Path(state_dir)
    if not directory.is_dir():
        raise UsageError.one(
            f"No state directory {directory}",
            "Suspending applies needs the state directory the daemon uses; this one does not "
            "exist.",
            "Pass the daemon's --state-dir (or set FLEETWARD_STATE_DIR).",
            location=str(directory),
        )
    data = json.dumps(suspension.to_dict(), indent=2, ensure_ascii=False) + "\n"
    try:
        write_atomic(directory / SUSPEND_FILE, data.encode())
    except OSError as exc:
        path = directory / SUSPEND_FILE
        raise os_error(exc, StoreError, f"Cannot write {path}", _AS_THE_DAEMON, path) from exc


def clear_suspension(state_dir: Path) -> Suspension | None:
    """Resume applies: remove the file; the suspension removed (None if there was none).

    A corrupt file is removed too (and None returned): resuming must always work."""
    path = Path(state_dir) / SUSPEND_FILE
    try:
        removed = read_suspension(state_dir)
    except StoreError:
        removed = None
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, StoreError, f"Cannot remove {path}", _AS_THE_DAEMON, path) from exc
    return removed


_AS_THE_DAEMON = "Run as the user the daemon runs as, or fix the directory's permissions."
_CANNOT_READ = "Cannot read the suspension file {}"
_FIX_OR_RESUME = "Fix the file, or remove it with fleetward resume (and suspend again if wanted)."


def _unreadable(path: Path, reason: str) -> StoreError:
    return StoreError.one(_CANNOT_READ.format(path), reason, _FIX_OR_RESUME, location=str(path))
