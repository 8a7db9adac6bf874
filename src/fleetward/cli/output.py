"""Terminal output: rich consoles, colours for rendered lines, tables, problems, JSON."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetward import timestamps
from fleetward.errors import Problem
from fleetward.rendering import Line, render_problem, write_json

STYLES = {
    "create": "green",
    "update": "yellow",
    "stop": "magenta",
    "delete": "red",
    "diff": "yellow",
    "kind": "bold",
    "header": "bold",
    "summary": "bold",
    "ok": "green",
    "blocked": "bold red",
    "error": "bold red",
    "location": "cyan",
    "snippet": "dim",
    "dim": "dim",
}

_OFF_TERMINAL_WIDTH = 200  # pipes and CI logs: room for tables instead of 80 columns
_TABLE_GAP = 2  # spaces between two columns of a borderless rich table
_LAST_COLUMN_MIN = 12  # the wrapped last column keeps at least this many cells
_CUT_FLOOR = 6  # a cut column keeps this many cells (or its title's) while others can give


def _console(*, to_stderr: bool, plain: bool) -> Console:
    """A console on stdout or stderr: colours and bold on a terminal unless `plain`.

    NO_COLOR (https://no-color.org) makes rich drop colours but keep bold and
    dim; here it drops every style, as --no-color does. FORCE_COLOR styles a
    pipe. Off a terminal the width is COLUMNS when set, else wide enough that
    tables are not cut. markup=False: object ids and paths are data;
    "Asset/B[red]" must print as written. No file=: rich writes to whatever
    sys.stdout or sys.stderr is when it prints.
    """
    plain = plain or os.environ.get("NO_COLOR", "") != ""
    stream = sys.stderr if to_stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    sized = stream.isatty() or (columns.isdigit() and int(columns) > 0)
    return Console(
        stderr=to_stderr,
        highlight=False,
        markup=False,
        soft_wrap=True,
        width=None if sized else _OFF_TERMINAL_WIDTH,
        color_system=None if plain else "auto",
    )


stdout = _console(to_stderr=False, plain=False)
stderr = _console(to_stderr=True, plain=False)


def configure(*, plain: bool) -> None:
    """Set up both consoles for one command; `plain` (--no-color): no colours and no
    bold, dim or underline."""
    global stdout, stderr
    stdout = _console(to_stderr=False, plain=plain)
    stderr = _console(to_stderr=True, plain=plain)


def print_lines(lines: Iterable[Line], console: Console | None = None) -> None:
    console = console or stdout
    for style, text in lines:
        console.print(Text(text, style=STYLES.get(style, "")))


def print_problems(problems: Iterable[Problem], console: Console | None = None) -> None:
    for problem in problems:
        print_lines(render_problem(problem), console or stderr)


def print_json(value: Any) -> None:
    """`value` as indented JSON on stdout, a long list (a plan's changes) item by item
    (`rendering.write_json`)."""
    write_json(value, sys.stdout.write)
    sys.stdout.flush()


# -- tables ---------------------------------------------------------------------------------


def print_table(
    columns: Sequence[str],
    rows: Iterable[tuple[Sequence[str], str]],
    console: Console | None = None,
) -> None:
    """Print (cells, style) rows under `columns`, as wide as the console and no wider.

    Every column but the last keeps each cell on one line; the last column (a
    message, a name) takes the room left and wraps. Where the console is too
    narrow even so, the widest columns are cut with "…" — the first column (the
    id a user copies) last. Rich's own fitting would instead shrink every column
    to make room for the longest word of the last one.
    """
    console = console or stdout
    body = [(list(cells), style) for cells, style in rows]
    natural = [
        max([cell_len(title)] + [cell_len(cells[i]) for cells, _ in body])
        for i, title in enumerate(columns)
    ]
    gaps = _TABLE_GAP * (len(columns) - 1)
    floors = [min(n, max(cell_len(t), _CUT_FLOOR)) for n, t in zip(natural, columns, strict=True)]
    fixed = _fit(natural[:-1], floors[:-1], console.width - gaps - _LAST_COLUMN_MIN)
    last = max(_LAST_COLUMN_MIN, console.width - sum(fixed) - gaps)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title, width in zip(columns[:-1], fixed, strict=True):
        table.add_column(title, no_wrap=True, overflow="ellipsis", max_width=width)
    table.add_column(columns[-1], overflow="fold", max_width=last)
    for cells, style in body:
        table.add_row(*cells, style=style)
    console.print(table)


def _fit(widths: list[int], floors: list[int], room: int) -> list[int]:
    """Narrow columns one cell at a time until they fit in `room`: the widest of
    those above their floor first, sparing the first column; then any."""
    widths = list(widths)
    while sum(widths) > room:
        cuttable = [i for i in range(1, len(widths)) if widths[i] > floors[i]]
        cuttable = cuttable or [i for i, w in enumerate(widths) if w > 1]
        if not cuttable:
            break
        widths[max(cuttable, key=lambda i: widths[i])] -= 1
    return widths


def short_id(operation_id: str) -> str:
    """The first 8 characters of an operation id: what `operations show` takes."""
    return operation_id[:8]


def short_revision(revision: str | None) -> str:
    """A revision in a table: 7 hex digits of a commit or of a directory's digest."""
    return revision.removeprefix("sha256:")[:7] if revision else "-"


def when(iso: str | None, now: dt.datetime | None = None) -> str:
    """An ISO 8601 time as "45s ago", "12m ago", "3h ago", "9d ago" (or "in 3h"),
    and as its date past 30 days; what does not parse is shown as it is."""
    if not iso:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    seconds = ((now or timestamps.now()) - moment).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds >= 30 * 86400:
        return moment.date().isoformat()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            amount = f"{int(seconds // size)}{unit}"
            break
    else:
        amount = f"{int(seconds)}s"
    return f"in {amount}" if ahead else f"{amount} ago"
