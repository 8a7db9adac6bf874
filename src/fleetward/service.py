"""The composition root: the daemon, its HTTP API, its web view and the observers they share.

The run loop (`daemon`) feeds health and metrics, and tells its reporters (the
web view's `LiveView`) when a run ends; the API (`http`) and the pages (`web`)
serve them with the daemon's operation log and control. Neither builds the
other: this is the one module that imports them all, so `daemon` never
imports `http` or `web`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

from fleetward.daemon.config import DaemonConfig
from fleetward.daemon.configured import display_source
from fleetward.daemon.runner import Daemon
from fleetward.http.app import ApiContext, create_app
from fleetward.http.server import Listening, serve
from fleetward.notify import Notifier
from fleetward.observe.health import Health
from fleetward.observe.metrics import Metrics
from fleetward.operations import Operation
from fleetward.pipeline import git_cache
from fleetward.web import CommitReader, LiveView, WebSources, public_url, repository_of, web_routes


def build_daemon(config: DaemonConfig, reload: Callable[[], DaemonConfig] | None = None) -> Daemon:
    """The daemon of `config`, with its observers, serving the API while it runs.

    `reload` re-reads the configuration on SIGHUP."""
    health = Health(ready_max_age=config.readiness_bound)
    metrics = Metrics(health)
    live = LiveView()
    daemon = Daemon(
        config,
        reload,
        health=health,
        metrics=metrics,
        serve_http=functools.partial(serve_api, live=live),
        reporters=[live],
    )
    # Notifications: a reporter of the daemon's runs, its secrets read (and checked) now.
    notifier = Notifier(
        daemon.store,
        config.notifications,
        {"url": display_source(config.source), "ref": config.ref, "path": config.path},
        config.external_url,
    )
    notifier.on_change = lambda: daemon.status.amend("notifications", notifier.summary())
    metrics.registry.register(notifier.collector())
    daemon.reporters.add(notifier)
    daemon.reconfigure = lambda new: notifier.reconfigure(new.notifications)
    if config.once:  # a served daemon's notifier empties its outbox on daemon_stopped
        daemon.before_exit = lambda: notifier.close(config.notify_wait)
    return daemon


def serve_api(daemon: Daemon, live: LiveView | None = None) -> Listening:
    """The HTTP API and the web view over the daemon's state, served on its --listen address.

    `live` is the reporter the daemon tells of its runs (a new one: pages only
    see the store and the operation log)."""
    live = live if live is not None else LiveView()
    web = WebSources(
        health=daemon.health,
        operations=daemon.operations,
        store=daemon.store,
        live=live,
        source=lambda: shown_source(daemon.config),
        commits=CommitReader(lambda: commits_at(daemon.config)),
    )
    live.prepare = web.prepare
    app = create_app(
        ApiContext(
            health=daemon.health,
            metrics=daemon.metrics,
            operations=daemon.operations,
            secrets=lambda: daemon.secrets,
            request_run=daemon.coalescer.request,
            control=daemon.control,
            tracked_ref=lambda: daemon.config.ref,
            rollback=functools.partial(queue_rollback, daemon),
        ),
        pages=web_routes(web, lambda: daemon.secrets.ui_token),
    )
    return serve(app, daemon.config.listen_address, daemon.config.listen)


def queue_rollback(daemon: Daemon, to: str, by: str) -> Operation:
    """POST /v0/rollback: the apply `to` names in the daemon's store, queued as a rollback
    operation (see `ControlApi.rollback`)."""
    return daemon.control.rollback(to, by, daemon.store)


def shown_source(config: DaemonConfig) -> Mapping[str, str]:
    """The source as the web view shows it: no credentials, local paths absolute."""
    url = public_url(config.source) if "://" in config.source else config.source
    if "://" not in url and "@" not in url:
        url = str(Path(url).resolve())
    return {"url": url, "ref": config.ref, "path": config.path}


def commits_at(config: DaemonConfig) -> Path | None:
    """The repository the source's commits are read from (None: a plain directory)."""
    return repository_of(config.source, config.no_git, Path(git_cache(config.state_dir)))


__all__ = ["build_daemon", "queue_rollback", "serve_api"]
