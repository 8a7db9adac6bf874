"""Terminal output: rich consoles, colours for rendered lines, problem rendering, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.text import Text

from fleetward.errors import Problem
from fleetward.rendering import Line, render_problem

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

# Colour only on a terminal; rich honours NO_COLOR and FORCE_COLOR itself.
# Off a terminal (pipes, CI logs) tables get room instead of being cut at 80 columns.
# markup=False: object ids and paths are data; "Asset/B[red]" must print as written.
stdout = Console(
    highlight=False, markup=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200
)
stderr = Console(
    stderr=True,
    highlight=False,
    markup=False,
    soft_wrap=True,
    width=None if sys.stderr.isatty() else 200,
)


def print_lines(lines: Iterable[Line], console: Console = stdout) -> None:
    for style, text in lines:
        console.print(Text(text, style=STYLES.get(style, "")))


def print_problems(problems: Iterable[Problem], console: Console = stderr) -> None:
    for problem in problems:
        print_lines(render_problem(problem), console)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
