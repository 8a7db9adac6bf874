"""`fleetward daemon`: keep the store equal to the repository, continuously."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from fleetward.cli.options import Duration
from fleetward.daemon import logs
from fleetward.daemon.config import (
    DEFAULT_LISTEN,
    KEYS,
    MIN_SECONDS,
    DaemonConfig,
    merge,
    parse_listen,
    read_config_file,
)
from fleetward.planning import DEFAULT_MIN_STOP_COUNT

F = TypeVar("F", bound=Callable[..., Any])


class _Listen(click.ParamType):  # type: ignore[type-arg]
    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            parse_listen(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


def _opt(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    name = decls[0].lstrip("-").replace("-", "_")
    kwargs.setdefault("envvar", "FLEETWARD_" + name.upper())
    kwargs.setdefault("show_envvar", True)
    if not kwargs.get("is_flag"):
        kwargs.setdefault("show_default", True)
    return click.option(*decls, name, **kwargs)


@click.command("daemon")
@_opt(
    "--source",
    default=".",
    metavar="PATH|URL",
    help="Git repository: a local path, or a URL (https://, ssh://, git@host:path, file://) "
    "cloned into <state-dir>/cache.",
)
@_opt("--ref", default="HEAD", help="Branch, tag or commit SHA to track.")
@_opt("--path", default="manifests", help="Directory of manifests inside the repository.")
@_opt("--no-git", is_flag=True, help="Read --source as a plain directory (development only).")
@_opt("--state-dir", default=".fleetward", help="Directory of the state store and status files.")
@_opt(
    "--interval",
    default="60s",
    type=Duration(minimum=MIN_SECONDS),
    help="Poll interval (with 10% jitter).",
)
@_opt(
    "--listen",
    default=DEFAULT_LISTEN,
    type=_Listen(),
    help="HTTP address for /metrics, /readyz and the API; port 0 picks a free port.",
)
@_opt(
    "--webhook-secret",
    metavar="SECRET",
    help="Secret of POST /v0/webhook (HMAC X-Hub-Signature-256 or X-Gitlab-Token); "
    "without one the webhook is disabled.",
)
@_opt("--webhook-secret-file", metavar="FILE", help="Read the webhook secret from FILE.")
@_opt(
    "--api-token",
    metavar="TOKEN",
    help="Bearer token for HTTP endpoints that change state; without one they are disabled.",
)
@_opt("--api-token-file", metavar="FILE", help="Read the API token from FILE.")
@_opt("--log-format", default="text", type=click.Choice(["text", "json"]), help="Log line format.")
@_opt(
    "--ready-max-age",
    type=Duration(minimum=MIN_SECONDS),
    metavar="DURATION",
    help="/readyz fails when the last good fetch or reconcile is older "
    "[default: 3 × interval, at least 5m].",
)
@_opt(
    "--git-timeout",
    default="60s",
    type=Duration(minimum=MIN_SECONDS),
    help="Timeout of every git command.",
)
@_opt(
    "--lock-timeout",
    default="10s",
    type=Duration(),
    help="How long to wait for another process's lock on the store.",
)
@_opt(
    "--operation-timeout",
    default="10m",
    type=Duration(minimum=MIN_SECONDS),
    help="How long one operation may run before it ends TIMEOUT, without writing "
    "(a request's arguments.timeout overrides it).",
)
@_opt("--allow-empty", is_flag=True, help="Apply revisions that declare no objects.")
@_opt(
    "--allow-mass-stop",
    is_flag=True,
    help="Apply plans that stop or delete more than 20% of a kind's objects.",
)
@_opt(
    "--min-stop-count",
    default=DEFAULT_MIN_STOP_COUNT,
    type=click.IntRange(min=0),
    metavar="N",
    help="The mass-stop guard holds only plans that stop or delete at least N objects "
    "(0: every plan past the fraction). A SyncPolicy's minStopCount wins.",
)
@_opt("--once", is_flag=True, help="Reconcile once and exit: 0 on success, 1 on failure.")
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
    defaults = DaemonConfig(**{name: value for name, value in values.items() if name in _FIELDS})

    def load() -> DaemonConfig:
        from_file = read_config_file(config_file) if config_file else {}
        return merge(explicit, from_file, defaults)

    config = load()
    logs.configure(config.log_format)
    from fleetward.service import build_daemon  # uvicorn and starlette load only for the daemon

    # SIGHUP re-reads the config file, and secret files even without one.
    code = build_daemon(config, reload=load).run()
    ctx.exit(code)


_FIELDS = set(KEYS.values())
