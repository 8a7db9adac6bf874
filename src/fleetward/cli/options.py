"""Options shared by commands, each group handed to the command as one value.

`@source_options` gives a command `sources: SourceOptions`, `@state_options`
gives `state: StateOptions`, `@guard_options` gives `guards: PlanOptions`.
Every option also reads a `FLEETWARD_*` variable; a flag wins over it. An
option that is also a daemon setting (all of these are) takes its name,
variable, type and default from that setting's declaration
(`fleetward.daemon.config.DaemonConfig`); only its help text is its own.
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from fleetward.daemon.config import SETTINGS, Setting
from fleetward.durations import check_range, parse_duration
from fleetward.pipeline import SourceOptions
from fleetward.planning import PlanOptions
from fleetward.store import Store, open_configured

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


class _SettingType(click.ParamType):  # type: ignore[type-arg]  # generic in newer click only
    """A flag or variable read by its setting's own type (durations, HOST:PORT, text)."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.name = (setting.metavar or "text").lower()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.setting.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def setting_keywords(setting: Setting) -> dict[str, Any]:
    """click.option keywords of `setting`: its variable, type and default (shown in --help)."""
    keywords: dict[str, Any] = {"envvar": setting.env, "show_envvar": True}
    if setting.is_flag:
        return keywords | {"is_flag": True}
    return keywords | {
        "type": click.Choice(setting.choices) if setting.choices else _SettingType(setting),
        "metavar": setting.metavar,
        "default": setting.default,
        "show_default": setting.default is not None,
    }


_SETTINGS = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class StateOptions:
    state_dir: str
    store: str | None
    lock_timeout: float

    def open_store(self) -> Store:
        """The store these options name: --store, else TinyDB in --state-dir."""
        return open_configured(self.store, self.state_dir)


# (setting name, click.option keywords over the setting's own) per group; the order is
# the --help order. The help texts are the commands' own: `plan` reads a revision once,
# where the daemon tracks one.
_OptionSpec = list[tuple[str, dict[str, Any]]]


def _source_specs(clone_into: str, cache_default: str) -> _OptionSpec:
    """The source options; `clone_into` says where a remote --source is cloned,
    `cache_default` where parsed manifests are cached without --cache-dir."""
    return [
        (
            "source",
            {
                "help": "Git repository holding the manifests: a local path, or a URL "
                f"(https://, ssh://, git@host:path, file://) cloned into {clone_into}; "
                "with --no-git, a plain directory.",
            },
        ),
        ("ref", {"help": "Branch, tag or commit SHA to read. Only committed content counts."}),
        ("path", {"help": "Directory (or file) of manifests inside the source."}),
        (
            "no_git",
            {
                "help": "Read --source as a plain directory, uncommitted files included "
                "(development only).",
            },
        ),
        (
            "cache_dir",
            {
                "type": click.Path(file_okay=False),
                "help": "Directory of the parsed-manifest cache, shared with other runs and "
                f"the daemon [default: {cache_default}].",
            },
        ),
        (
            "no_cache",
            {"help": "Parse every manifest file afresh; read and write no cache (debugging)."},
        ),
        (
            "verify_signatures",
            {
                "help": "Refuse the revision unless its commit is signed by a key of "
                "--allowed-signers or --gpg-keyring.",
            },
        ),
        (
            "allowed_signers",
            {"help": "SSH keys trusted to sign commits, in Git's allowed-signers format."},
        ),
        (
            "gpg_keyring",
            {"help": "OpenPGP public keys trusted to sign commits (binary or armored export)."},
        ),
    ]


_STORE_HELP = (
    "The state store: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or a directory "
    "[default: TinyDB in --state-dir]."
)
_STATE: _OptionSpec = [
    ("state_dir", {"type": click.Path(file_okay=False), "help": "Directory of the state store."}),
    ("store", {"help": _STORE_HELP}),
    ("lock_timeout", {"help": "How long to wait for another process's lock on the store."}),
]
_GUARDS: _OptionSpec = [
    (
        "allow_empty",
        {"help": "Allow a revision that declares no objects while the store holds some."},
    ),
    (
        "allow_mass_stop",
        {
            "help": "Allow stopping or deleting more than 20% of a kind's objects (or a "
            "SyncPolicy's maxStopFraction of the objects it governs).",
        },
    ),
    (
        "min_stop_count",
        {
            "help": "The mass-stop guard blocks only plans that stop or delete at least N "
            "objects (0: every plan past the fraction). A SyncPolicy's minStopCount wins.",
        },
    ),
]


def _group(specs: _OptionSpec, target: str, build: Callable[..., Any]) -> Callable[[F], F]:
    """Add the options of `specs` to a command and pass them on as `target=build(**values)`."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name, _ in specs}
            return func(*args, **{target: build(**values)}, **kwargs)

        command: Any = wrapper
        for name, keywords in reversed(specs):
            setting = _SETTINGS[name]
            command = click.option(setting.flag, name, **setting_keywords(setting) | keywords)(
                command
            )
        return command  # type: ignore[no-any-return]

    return decorate


source_options = _group(
    _source_specs("<state-dir>/cache", "<state-dir>/cache/documents"), "sources", SourceOptions
)
# For commands without a state directory (validate, rules preview): a remote is
# cloned into a temporary directory, removed when the command ends.
scratch_source_options = _group(
    _source_specs("a temporary directory", "none"), "sources", SourceOptions
)
state_options = _group(_STATE, "state", StateOptions)
# --isolate-failures (plan, apply): one flag, passed on as `isolate_failures`.
isolate_option = _group(
    [("isolate_failures", {})], "isolate_failures", lambda isolate_failures: isolate_failures
)
guard_options = _group(_GUARDS, "guards", PlanOptions)


def store_option(func: F) -> F:
    """--store for commands that only read (they take --state-dir on their own)."""
    setting = _SETTINGS["store"]
    keywords = setting_keywords(setting) | {"help": _STORE_HELP}
    return click.option(setting.flag, "store", **keywords)(func)


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
