"""`fleetward daemon`: keep the store equal to the repository, continuously."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from fleetward.daemon import logs
from fleetward.daemon.config import SETTINGS, DaemonConfig, Setting, merge, read_config_file

F = TypeVar("F", bound=Callable[..., Any])


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


def _option(setting: Setting) -> Callable[[F], F]:
    """The flag of `setting`, reading FLEETWARD_<NAME> too, its default shown in --help."""
    keywords: dict[str, Any] = {"help": setting.help, "envvar": setting.env, "show_envvar": True}
    if setting.is_flag:
        keywords["is_flag"] = True
    else:
        keywords["type"] = (
            click.Choice(setting.choices) if setting.choices else _SettingType(setting)
        )
        keywords["metavar"] = setting.metavar
        keywords["default"] = setting.default
        keywords["show_default"] = setting.default is not None
    return click.option(setting.flag, setting.name, **keywords)


def _setting_options(func: F) -> F:
    for setting in reversed(SETTINGS):
        func = _option(setting)(func)
    return func


@click.command("daemon")
@_setting_options
@click.option(
    "--config",
    "config_file",
    envvar="FLEETWARD_CONFIG",
    show_envvar=True,
    metavar="FILE",
    help="YAML config; keys are these flags' names (state-dir: /var/lib/fleetward). "
    "Flags and FLEETWARD_* variables win over it.",
)
@click.pass_context
def daemon_command(ctx: click.Context, /, config_file: str | None, **values: Any) -> None:
    """Reconcile continuously: on every commit, webhook and poll, plan and apply.

    \b
    With no arguments: ./manifests of the current Git repository into ./.fleetward,
    HTTP on 127.0.0.1:9477 (/metrics, /healthz, /readyz, /v0/operations/).
    A commit to a local repository triggers a run at once; remotes are polled
    (and take webhooks). Invalid revisions are never applied: the last good one
    stays, and the errors show in status/summary.json, /metrics and /readyz.
    SIGTERM finishes or abandons the run in flight safely and exits 0;
    SIGHUP re-reads the config file and secret files.
    """
    explicit = {
        name: value
        for name, value in values.items()
        if ctx.get_parameter_source(name)
        in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }

    def load() -> DaemonConfig:
        from_file = read_config_file(config_file) if config_file else {}
        return merge(explicit, from_file)

    config = load()
    logs.configure(config.log_format)
    from fleetward.daemon.runner import Daemon  # uvicorn and starlette load only for the daemon

    # SIGHUP re-reads the config file, and secret files even without one.
    code = Daemon(config, reload=load).run()
    ctx.exit(code)

