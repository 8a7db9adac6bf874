"""Options shared by commands: where the manifests are, where the store is."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Duration(click.ParamType):
    """`10s`, `2m`, `500ms`, `1h` or a plain number of seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration; write e.g. 10s, 2m, 500ms or 1h", param, ctx)
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def source_options(func: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--source",
                envvar="FLEETWARD_SOURCE",
                show_envvar=True,
                default=".",
                show_default=True,
                metavar="PATH",
                help="Git repository (or, with --no-git, plain directory) holding the manifests.",
            ),
            click.option(
                "--ref",
                envvar="FLEETWARD_REF",
                show_envvar=True,
                default="HEAD",
                show_default=True,
                help="Branch, tag or commit SHA to read. Only committed content counts.",
            ),
            click.option(
                "--path",
                "manifest_path",
                envvar="FLEETWARD_PATH",
                show_envvar=True,
                default="manifests",
                show_default=True,
                help="Directory (or file) of manifests inside the source.",
            ),
            click.option(
                "--no-git",
                is_flag=True,
                envvar="FLEETWARD_NO_GIT",
                help="Read --source as a plain directory, uncommitted files included (development only).",
            ),
        ]
    ):
        func = decorator(func)
    return func


def state_options(func: F) -> F:
    func = click.option(
        "--lock-timeout",
        envvar="FLEETWARD_LOCK_TIMEOUT",
        show_envvar=True,
        type=Duration(),
        default="10s",
        show_default=True,
        help="How long to wait for another process's lock on the store.",
    )(func)
    func = click.option(
        "--state-dir",
        envvar="FLEETWARD_STATE_DIR",
        show_envvar=True,
        default=".fleetward",
        show_default=True,
        type=click.Path(file_okay=False),
        help="Directory of the state store.",
    )(func)
    return func


def guard_options(func: F) -> F:
    func = click.option(
        "--allow-mass-stop",
        is_flag=True,
        help="Allow stopping or deleting more than 20% of a kind's objects.",
    )(func)
    func = click.option(
        "--allow-empty",
        is_flag=True,
        help="Allow a revision that declares no objects while the store holds some.",
    )(func)
    return func


def max_lines_option(func: F) -> F:
    return click.option(
        "--max-lines",
        type=click.IntRange(min=0),
        default=200,
        show_default=True,
        help="Show at most this many object lines (0: all). Counts per kind are always shown.",
    )(func)
