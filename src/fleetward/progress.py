"""Progress through the long stages of a revision (reading files, validating documents, planning).

The engine reports to the `Progress` it is handed, silent by default; the CLI
hands in a terminal bar. Nothing here draws anything: the engine imports no rich.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import Enum
from typing import Protocol, TypeVar

__all__ = ["SILENT", "Phase", "Progress", "counted"]

T = TypeVar("T")


class Phase(str, Enum):
    """The stages a watcher is told about, in the order they run; the value is for people."""

    READING = "Reading files"
    VALIDATING = "Validating documents"
    PLANNING = "Planning"


class Progress(Protocol):
    """Told when a phase starts and as it gets through its items."""

    def start(self, phase: Phase, total: int) -> None:
        """`phase` begins, with `total` items (files, documents, objects) to go through."""

    def advance(self, n: int = 1) -> None:
        """`n` more items of the current phase are done."""


class _Silent:
    def start(self, phase: Phase, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


SILENT: Progress = _Silent()


def counted(items: Iterable[T], progress: Progress, every: int = 1000) -> Iterator[T]:
    """`items`, advancing `progress` once per `every` of them (and by the rest at the end).

    For loops over tens of thousands of objects: a watcher's `advance` takes a lock
    and stamps a time, so once per item would cost more than the work it reports.
    """
    pending = 0
    for item in items:
        yield item
        pending += 1
        if pending == every:
            progress.advance(pending)
            pending = 0
    if pending:
        progress.advance(pending)
