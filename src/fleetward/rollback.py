"""Rollback: which earlier apply to go back to, and the pin that holds the store there.

`fleetward rollback --to SERIAL|REVISION` (and `POST /v0/rollback`) plans the
store back to the desired state of a revision an earlier apply wrote, re-read
from Git at that revision, applies it as an operation (trigger `rollback`) and
pins the store to it (`Store.set_pin`): the daemon then reconciles that
revision — drift included — instead of the tracked ref's head, until
`fleetward resume` lifts the pin. Runtime status is never rolled back: a plan
compares specs only, and an apply keeps every object's status.

A targeted apply (`--target`) wrote part of its revision: it cannot be
rolled back to (the revision was never all there), and while it is the last
apply the store is at no revision wholly (`current_revision`), so the one
before it can be rolled back to.

This module holds the choices that need no I/O: which history entry `--to`
names (`rollback_point`), whether an entry can be rolled back to
(`can_roll_back`), and which ref a pinned run reads (`pinned_sources`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleetward.errors import SourceError, UsageError
from fleetward.operations import Operation
from fleetward.source import Source
from fleetward.store import Pin

TRIGGER = "rollback"  # the trigger of a rollback's operation
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-fA-F]{4,64}")
_ARGUMENTS = ("rollbackTo", "rollbackSerial", "rollbackBy")
# `--to` of at most this many digits is a serial; longer, a revision (a SHA's prefix).
_SERIAL_DIGITS = 6


@dataclass(frozen=True, slots=True)
class RollbackPoint:
    """An apply of the history to go back to: its serial, revision and time."""

    serial: int
    revision: str
    time: str
    # That apply was targeted (its --target expressions): it cannot be rolled back to.
    targets: tuple[str, ...] = ()

    @property
    def targeted(self) -> bool:
        return bool(self.targets)

    @property
    def short(self) -> str:
        return self.revision[:7]


def can_roll_back(entry: Mapping[str, Any]) -> bool:
    """Whether a history entry is a whole apply of a Git commit (a status change, an apply
    of a plain directory, which cannot be read again, or a targeted apply is not)."""
    return _of_commit(entry) and not entry.get("targeted")


def current_revision(history: Sequence[Mapping[str, Any]], last_applied: str | None) -> str | None:
    """The revision the store wholly equals: its last applied revision, unless a targeted
    apply wrote part of another since (then none: no revision is all there)."""
    for entry in reversed(history):
        if _is_apply(entry):
            return None if entry.get("targeted") else last_applied
    return last_applied


def refusal_status(exc: UsageError) -> int:
    """The HTTP status of a `rollback_point` refusal: 404 for an apply the history does
    not keep, 409 for the revision the store is at, 400 otherwise."""
    why = exc.problems[0].parameters.get("why") if exc.problems else None
    return {"unknown": 404, "current": 409}.get(str(why), 400)


def rollback_point(
    history: Sequence[Mapping[str, Any]], to: str, current: str | None
) -> RollbackPoint:
    """The apply `to` names: a serial of `history`, or (a prefix of) a revision it applied
    (then its latest apply). UsageError when it names none, names several revisions, or
    names the revision the store is at (`current`, its last applied revision): there is
    nothing to roll back. A targeted apply is never one to go back to: the revision it
    wrote part of was not all there."""
    to = to.strip()
    points = [_point(e) for e in history if _of_commit(e)]
    if to.isdigit() and len(to) <= _SERIAL_DIGITS:
        found = _by_serial(history, points, int(to))
    else:
        found = _by_revision(points, to)
    if found.targeted:
        raise UsageError.one(
            f"Serial {found.serial} was a targeted apply",
            f"It wrote only the objects of revision {found.short} that --target selected "
            f"({', '.join(found.targets)}), so the store never held that revision: rolling "
            "back to it would write the rest of it as well.",
            "Roll back to a whole apply (fleetward state history marks them yes), or apply "
            "that revision with fleetward apply.",
            location="--to",
            serial=found.serial,
            revision=found.revision,
            why="targeted",
        )
    if found.revision == current_revision(history, current):
        raise UsageError.one(
            f"Nothing to roll back: the store is at revision {found.short} already",
            f"--to {to} names the apply at serial {found.serial} of revision {found.short}, "
            "which is the store's last applied revision.",
            "Pick an earlier apply from fleetward state history (its ROLLBACK column), or run "
            "fleetward apply to revert drift at the current revision.",
            location="--to",
            serial=found.serial,
            revision=found.revision,
            why="current",
        )
    return found


def pinned_sources(sources: Source, pin: Pin | None) -> Source:
    """The sources a run reads: the pinned revision while a pin holds, else as given."""
    return sources if pin is None else sources.at(pin.revision)


def rollback_of(op: Operation, now: str) -> Pin | None:
    """The pin a rollback operation sets (`POST /v0/rollback` queues one); None for any
    other operation."""
    revision = op.arguments.get("rollbackTo")
    if not isinstance(revision, str):
        return None
    serial = op.arguments.get("rollbackSerial")
    by = op.arguments.get("rollbackBy")
    return Pin(
        revision,
        serial if isinstance(serial, int) else 0,
        by if isinstance(by, str) else op.trigger,
        now,
        op.operation_id,
    )


def rollback_operation(point: RollbackPoint, by: str, now: str) -> Operation:
    """The operation that rolls back to `point` (trigger `rollback`), as `fleetward
    rollback` runs it and `POST /v0/rollback` queues it; `rollback_of` reads it back."""
    arguments = {"rollbackTo": point.revision, "rollbackSerial": point.serial, "rollbackBy": by}
    return replace(Operation.new(TRIGGER, now), arguments=arguments)


def rollback_arguments(op: Operation) -> dict[str, Any]:
    """The arguments that make `op` a rollback (none for any other operation): what an
    operation carrying a part the rollback held keeps, to run that rollback."""
    return {k: op.arguments[k] for k in _ARGUMENTS if k in op.arguments}


def is_rollback(op: Operation) -> bool:
    """Whether running `op` rolls back (a rollback's operation, or one carrying its part)."""
    return isinstance(op.arguments.get("rollbackTo"), str)


def gone_from_git(point: RollbackPoint, exc: SourceError) -> SourceError:
    """The error for a rollback whose revision the source no longer has."""
    said = exc.problems[0] if exc.problems else None
    return SourceError.one(
        f"Cannot roll back to revision {point.short}: the source does not have it",
        f"Serial {point.serial} applied commit {point.revision}, and reading it failed: "
        + (f"{said.error}. {said.reason}" if said else str(exc)),
        "The commit may have been removed by a force-push or a garbage collection. Roll back "
        "to another apply (fleetward state history), or restore the commit in the repository.",
        location=point.revision,
        serial=point.serial,
        revision=point.revision,
    )


def _is_apply(entry: Mapping[str, Any]) -> bool:
    """Whether a history entry records an apply (not a runtime status change)."""
    counts = entry.get("counts")
    return isinstance(counts, Mapping) and "status" not in counts


def _of_commit(entry: Mapping[str, Any]) -> bool:
    """Whether a history entry is an apply (whole or targeted) of a Git commit."""
    revision = entry.get("revision")
    return (
        _is_apply(entry)
        and isinstance(revision, str)
        and _COMMIT.fullmatch(revision) is not None
        and isinstance(entry.get("serial"), int)
    )


def _point(entry: Mapping[str, Any]) -> RollbackPoint:
    targeted = entry.get("targeted")
    return RollbackPoint(
        int(entry["serial"]),
        str(entry["revision"]),
        str(entry.get("time") or ""),
        tuple(str(t) for t in targeted) if isinstance(targeted, list) and targeted else (),
    )


def _by_serial(
    history: Sequence[Mapping[str, Any]], points: Sequence[RollbackPoint], serial: int
) -> RollbackPoint:
    for point in points:
        if point.serial == serial:
            return point
    kept = [e for e in history if e.get("serial") == serial]
    if kept:
        raise UsageError.one(
            f"Serial {serial} cannot be rolled back to",
            "It records a runtime status change (tasks set-status) or an apply of a plain "
            "directory, not an apply of a Git commit that can be read again.",
            _PICK_ANOTHER,
            location="--to",
            serial=serial,
            why="not-an-apply",
        )
    serials = [p.serial for p in points]
    kept_range = f"serials {min(serials)} to {max(serials)}" if serials else "no applies"
    raise UsageError.one(
        f"No apply at serial {serial} in the store's history",
        f"The history keeps {kept_range} that can be rolled back to (the last 100 writes).",
        _PICK_ANOTHER,
        location="--to",
        serial=serial,
        why="unknown",
    )


def _by_revision(points: Sequence[RollbackPoint], to: str) -> RollbackPoint:
    if _PREFIX.fullmatch(to) is None:
        raise UsageError.one(
            f"--to {to!r} is neither a serial nor a revision",
            "--to takes a serial of fleetward state history, or a commit SHA (4 hex digits "
            "at least) that an apply in that history wrote.",
            _PICK_ANOTHER,
            location="--to",
            why="invalid",
        )
    prefix = to.lower()
    matching = [p for p in points if p.revision.startswith(prefix)]
    revisions = {p.revision for p in matching}
    if not matching:
        raise UsageError.one(
            f"No apply of revision {to} in the store's history",
            "Rollback returns to a revision an earlier apply wrote, and none of the applies "
            "the history keeps wrote one starting with it.",
            _PICK_ANOTHER,
            location="--to",
            revision=to,
            why="unknown",
        )
    if len(revisions) > 1:
        raise UsageError.one(
            f"Revision {to} is ambiguous",
            f"Applies of {len(revisions)} revisions start with it: "
            + ", ".join(sorted(r[:12] for r in revisions))
            + ".",
            "Give more digits of the SHA, or the serial.",
            location="--to",
            revision=to,
            why="ambiguous",
        )
    # Its latest whole apply; with targeted ones only, the latest (refused as such).
    whole = [p for p in matching if not p.targeted]
    return max(whole or matching, key=lambda p: p.serial)


_PICK_ANOTHER = "fleetward state history lists the applies that can be rolled back to."

__all__ = [
    "TRIGGER",
    "RollbackPoint",
    "can_roll_back",
    "current_revision",
    "gone_from_git",
    "is_rollback",
    "pinned_sources",
    "refusal_status",
    "rollback_arguments",
    "rollback_of",
    "rollback_operation",
    "rollback_point",
]
