"""`fleetward daemon`: keep the store equal to the repository, continuously."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from fleetward.cli.options import setting_keywords
from fleetward.daemon import logs
from fleetward.daemon.config import SETTINGS, DaemonConfig, merge, read_config_file

F = TypeVar("F", bound=Callable[..., Any])


def _setting_options(func: F) -> F:
    """One option per daemon setting, in declaration order, each with its own --help text."""
    for setting in reversed(SETTINGS):
        func = click.option(
            setting.flag, setting.name, help=setting.help, **setting_keywords(setting)
        )(func)
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
    from fleetward.service import build_daemon  # uvicorn and starlette load only for the daemon

    # SIGHUP re-reads the config file, and secret files even without one.
    code = build_daemon(config, reload=load).run()
    ctx.exit(code)
