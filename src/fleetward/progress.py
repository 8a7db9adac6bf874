"""What a long piece of work tells whoever watches it, and where it may be stopped.

The engine's stages (reading files, validating documents, planning, applying)
report to the `Watch` they are handed: a phase starts with so many items, items
get done, and between items there is a checkpoint where whoever watches may
stop the work by raising (a stopping daemon, an operator's cancel). One object
carries all three, so a stage takes one parameter, not a progress bar and a
stop callback. `SILENT` watches nothing and never stops; the CLI hands in a
terminal bar, the engine a watch of its run. Nothing here draws anything: the
engine imports no rich.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import Enum
from typing import TypeVar

__all__ = ["SILENT", "Phase", "Watch", "counted"]

T = TypeVar("T")


class Phase(str, Enum):
    """The stages a watcher is told about, in the order they run; the value is for people."""

    READING = "Reading files"
    VALIDATING = "Validating documents"
    PLANNING = "Planning"
    APPLYING = "Applying"


class Watch:
    """Every hook, doing nothing: a watcher overrides the ones it cares about."""

    def start(self, phase: Phase, total: int) -> None:
        """`phase` begins, with `total` items (files, documents, objects, changes) to go through."""

    def advance(self, n: int = 1) -> None:
        """`n` more items of the current phase are done."""

    def checkpoint(self) -> None:
        """A safe point to stop, between two items: whatever this raises ends the work here."""


SILENT = Watch()


def counted(items: Iterable[T], watch: Watch, every: int = 1000) -> Iterator[T]:
    """`items`, advancing `watch` once per `every` of them (and by the rest at the end).

    For loops over tens of thousands of objects: a watcher's `advance` takes a lock
    and stamps a time, so once per item would cost more than the work it reports.
    """
    pending = 0
    for item in items:
        yield item
        pending += 1
        if pending == every:
            watch.advance(pending)
            pending = 0
    if pending:
        watch.advance(pending)
