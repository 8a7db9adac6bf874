"""The composition root: the daemon, its HTTP API and the observers they share, wired.

The run loop (`daemon`) feeds health and metrics; the API (`http`) serves them
with the daemon's operation log and control. Neither builds the other: this is
the one module that imports both, so `daemon` never imports `http`.
"""

from __future__ import annotations

from collections.abc import Callable

from fleetward.daemon.config import DaemonConfig
from fleetward.daemon.runner import Daemon, display_source
from fleetward.http.app import ApiContext, create_app
from fleetward.http.server import Listening, serve
from fleetward.notify import Notifier
from fleetward.observe.health import Health
from fleetward.observe.metrics import Metrics
from fleetward.reporting import Reporters


def build_daemon(config: DaemonConfig, reload: Callable[[], DaemonConfig] | None = None) -> Daemon:
    """The daemon of `config`, with its observers, serving the API while it runs.

    `reload` re-reads the configuration on SIGHUP."""
    health = Health(ready_max_age=config.readiness_bound)
    metrics = Metrics(health)
    daemon = Daemon(config, reload, health=health, metrics=metrics, serve_http=serve_api)
    # Notifications: a reporter of the daemon's runs, its secrets read (and checked) now.
    notifier = Notifier(
        daemon.store,
        config.notifications,
        {"url": display_source(config.source), "ref": config.ref, "path": config.path},
        config.external_url,
    )
    notifier.on_change = lambda: daemon.status.amend("notifications", notifier.summary())
    metrics.registry.register(notifier.collector())
    daemon.reporters = Reporters([notifier])
    daemon.reconfigure = lambda new: notifier.reconfigure(new.notifications)
    return daemon


def serve_api(daemon: Daemon) -> Listening:
    """The HTTP API over the daemon's state, served on its --listen address."""
    app = create_app(
        ApiContext(
            health=daemon.health,
            metrics=daemon.metrics,
            operations=daemon.operations,
            secrets=lambda: daemon.secrets,
            request_run=daemon.coalescer.request,
            control=daemon.control,
            tracked_ref=lambda: daemon.config.ref,
        )
    )
    return serve(app, daemon.config.listen_address, daemon.config.listen)


__all__ = ["build_daemon", "serve_api"]
