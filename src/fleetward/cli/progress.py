"""The engine's phases as a bar on stderr: reading files, validating, planning, applying.

Only on a terminal, and only for commands printing text: with --json, or with
stderr piped or redirected, the engine gets the silent Watch and every byte
of output stays as it was. The bar is transient: it is gone once the phase ends.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from fleetward.cli import output
from fleetward.progress import SILENT, Phase, Watch


class TerminalProgress(Watch):
    """A `Watch` drawn by rich: one line, the phase, its count and the time it has taken.

    Closed while something else is printed (the plan, a prompt); the next phase
    draws it again."""

    def __init__(self, console: Console) -> None:
        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            # Nothing else is printed while it runs; leave stdout and stderr alone.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task: TaskID | None = None
        self._drawn = False

    def start(self, phase: Phase, total: int) -> None:
        if not self._drawn:
            self._bar.start()
            self._drawn = True
        if self._task is None:
            self._task = self._bar.add_task(phase.value, total=total)
        else:
            self._bar.reset(self._task, total=total, description=phase.value)
        # Drawn now, not at the next tick: a phase shorter than a tick is still seen.
        self._bar.refresh()

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)

    def close(self) -> None:
        if self._drawn:
            self._bar.stop()
            self._drawn = False


def _on_a_terminal(console: Console) -> bool:
    # isatty itself: rich takes FORCE_COLOR to mean a terminal, and CI logs set it.
    return sys.stderr.isatty() and console.is_terminal and not console.is_dumb_terminal


@contextlib.contextmanager
def phases(ctx: click.Context) -> Iterator[Watch]:
    """The Watch to hand the engine for this command; the bar is cleared on the way out."""
    if ctx.meta.get("json_output") or not _on_a_terminal(output.stderr):
        yield SILENT
        return
    bar = TerminalProgress(output.stderr)
    try:
        yield bar
    finally:
        bar.close()
