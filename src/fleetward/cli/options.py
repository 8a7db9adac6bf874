"""Options shared by commands, each group handed to the command as one value.

`@source_options` gives a command `sources: SourceOptions`, `@state_options`
gives `state: StateOptions`, `@guard_options` gives `guards: PlanOptions`.
Every option also reads a `FLEETWARD_*` variable; a flag wins over it.
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from fleetward.durations import check_range, parse_duration
from fleetward.pipeline import SourceOptions
from fleetward.planning import PlanOptions

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic in newer click only
    """A duration in the one grammar (`fleetward.durations`), at least `minimum` seconds."""

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            return check_range(value, parse_duration(value), self.minimum)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@dataclass(frozen=True, slots=True)
class StateOptions:
    state_dir: str
    lock_timeout: float


# (flag, parameter name, click.option keywords) per group; the order is the --help order.
_OptionSpec = list[tuple[str, str, dict[str, Any]]]

_SOURCE: _OptionSpec = [
    (
        "--source",
        "source",
        {
            "default": ".",
            "metavar": "PATH|URL",
            "help": "Git repository holding the manifests: a local path, or a URL (https://, ssh://, git@host:path, file://) cloned into <state-dir>/cache; with --no-git, a plain directory.",
        },
    ),
    (
        "--ref",
        "ref",
        {
            "default": "HEAD",
            "help": "Branch, tag or commit SHA to read. Only committed content counts.",
        },
    ),
    (
        "--path",
        "path",
        {"default": "manifests", "help": "Directory (or file) of manifests inside the source."},
    ),
    (
        "--no-git",
        "no_git",
        {
            "is_flag": True,
            "help": "Read --source as a plain directory, uncommitted files included (development only).",
        },
    ),
]
_STATE: _OptionSpec = [
    (
        "--state-dir",
        "state_dir",
        {
            "default": ".fleetward",
            "type": click.Path(file_okay=False),
            "help": "Directory of the state store.",
        },
    ),
    (
        "--lock-timeout",
        "lock_timeout",
        {
            "default": "10s",
            "type": Duration(),
            "help": "How long to wait for another process's lock on the store.",
        },
    ),
]
_GUARDS: _OptionSpec = [
    (
        "--allow-empty",
        "allow_empty",
        {
            "is_flag": True,
            "help": "Allow a revision that declares no objects while the store holds some.",
        },
    ),
    (
        "--allow-mass-stop",
        "allow_mass_stop",
        {"is_flag": True, "help": "Allow stopping or deleting more than 20% of a kind's objects."},
    ),
]


def _group(specs: _OptionSpec, target: str, build: Callable[..., Any]) -> Callable[[F], F]:
    """Add the options of `specs` to a command and pass them on as `target=build(**values)`."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for _, name, _ in specs}
            return func(*args, **{target: build(**values)}, **kwargs)

        command: Any = wrapper
        for flag, name, keywords in reversed(specs):
            envvar = "FLEETWARD_" + name.upper()
            defaults: dict[str, Any] = {} if keywords.get("is_flag") else {"show_default": True}
            command = click.option(
                flag, name, envvar=envvar, show_envvar=True, **defaults, **keywords
            )(command)
        return command  # type: ignore[no-any-return]

    return decorate


source_options = _group(_SOURCE, "sources", SourceOptions)
state_options = _group(_STATE, "state", StateOptions)
guard_options = _group(_GUARDS, "guards", PlanOptions)


def max_lines_option(func: F) -> F:
    return click.option(
        "--max-lines",
        type=click.IntRange(min=0),
        default=200,
        show_default=True,
        help="Show at most this many object lines (0: all). Counts per kind are always shown.",
    )(func)


def os_user(default: str) -> str:
    """The OS user's name (who suspends, approves, sets a status), or `default`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return default
