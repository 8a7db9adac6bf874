"""`fleetward daemon`: the run loop, its triggers, signals and systemd notification.

Threads: the main thread handles signals, reloads and the systemd watchdog;
one worker runs reconciles (never two at once); APScheduler fires the poll;
watchfiles watches a local repository's refs; the HTTP front serves the API.
Triggers only queue a run (`Coalescer`), so a burst of commits or webhooks
costs one run in flight and one queued. Each run is the engine's converge
(`reconciler`); health, metrics, status files and the log hear of it as the
engine's reporters. The HTTP front and the observers it shares with the run
loop are handed in by the composition root (`service`): the daemon never
imports the HTTP layer.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fleetward import __version__
from fleetward.daemon import logs
from fleetward.daemon.config import DaemonConfig
from fleetward.daemon.configured import (
    display_source,
    kept_until_restart,
    run_settings,
    secrets_of,
    source_info,
)
from fleetward.daemon.control import Control
from fleetward.daemon.notify import notify, watchdog_interval
from fleetward.daemon.ports import HttpFront
from fleetward.daemon.process import Waker, daemon_lock, install_signals
from fleetward.daemon.reconciler import Reconciler
from fleetward.daemon.replicas import Lead, Replica, RoleShown
from fleetward.daemon.triggers import Backoff, Coalescer, Poller, Watcher, git_dirs
from fleetward.daemon.worker import Worker
from fleetward.errors import FleetwardError, UsageError, os_error
from fleetward.observe.health import Health
from fleetward.observe.metrics import Metrics
from fleetward.observe.status import StatusWriter
from fleetward.operations import Operation, OperationState
from fleetward.pipeline import (
    SourceOptions,
    open_documents,
)
from fleetward.reporting import Reporter, Reporters
from fleetward.runs import AfterFetch, RunReport
from fleetward.source import is_remote
from fleetward.source.urls import validate_ref
from fleetward.store import open_configured
from fleetward.store.directory import make_state_dir, refuse_if_tracked
from fleetward.store.files import sweep_leftovers
from fleetward.store.suspension import StoreOrFile
from fleetward.timestamps import now_iso

logger = logging.getLogger("fleetward.daemon")

WAKE_JOB = "wake"
STUCK_AFTER = 900.0  # seconds a run may take before /healthz fails and the watchdog stops
STOP_DEADLINE = 9.0  # seconds from SIGTERM to exit; systemd's default stop timeout is 90
_RECORDED_TRIGGERS = ("api", "webhook")  # queued operations callers are told about


# Starts serving the API over this daemon's state (its health, metrics, operation
# log, control); called once, when the daemon starts serving.
ServeHttp = Callable[["Daemon"], HttpFront]


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        reload: Callable[[], DaemonConfig] | None = None,
        *,
        health: Health,
        metrics: Metrics,
        serve_http: ServeHttp,
        reporters: Iterable[Reporter] = (),
    ):
        self.config = config
        self._reload = reload
        self.state_dir = Path(config.state_dir)
        self.stopping = threading.Event()
        self._wake = Waker()
        self._stop_signal: int | None = None
        self._reload_requested = False
        self.health = health
        self.metrics = metrics
        self._serve_http = serve_http
        # Reporters beyond the daemon's own (the web view's live updates, notifications):
        # handed in by the composition root, told after status files and metrics.
        extra = tuple(reporters)
        # Checks a reloaded configuration and takes it (raises FleetwardError to refuse it).
        self.reconfigure: Callable[[DaemonConfig], None] | None = None
        # Called as a --once run exits, after its run (a served daemon tells its reporters
        # `daemon_stopped` instead): what must not be cut off by the exit, bounded.
        self.before_exit: Callable[[], None] | None = None
        self.store = open_configured(config.store, config.state_dir)
        self.operations = self.store.operations
        self.secrets = secrets_of(config)
        self.coalescer = Coalescer(on_queued=self._queued)
        self._wake_lock = threading.Lock()
        self.control = Control(
            self.operations,
            self.coalescer,
            self.state_dir,
            config.operation_timeout,
            on_change=self._reschedule_wake,
            rejections=self.store.rejections,
            # Replicas of one database share the store's; suspend.json in --state-dir
            # holds this one too.
            suspensions=self.store
            if config.store is None
            else StoreOrFile(self.store, Path(config.state_dir)),
        )
        health.operations = self.operations
        self.status = StatusWriter(self.state_dir, source_info(config), health, self._daemon_info)
        # In this order: status files read what health took in; the log line comes last.
        self.reporters = Reporters([health, metrics, self.status, logs.RunLog(), *extra])
        settings = run_settings(config)
        self.reconciler = Reconciler(
            settings,
            self.operations,
            self.control,
            self.store,
            self.reporters,
            # Parsed manifests outlive the process: a restart (or a CLI run) parses
            # only the files that changed.
            documents=(
                open_documents(settings.sources)
                if isinstance(settings.sources, SourceOptions)
                else None
            ),
        )
        # A PostgreSQL store is shared by replicas, one of which leads (`replicas`).
        lead: Lead | None = getattr(self.store, "leadership", None)
        name = f"pid {os.getpid()} on {socket.gethostname()}"
        shown = RoleShown(self.health, self.status, name, self.store.location)
        self.replica = Replica(
            lead, self.operations, self.coalescer, idle=self._idle, on_role=shown, name=name
        )
        self.backoff = Backoff(base=1.0, cap=config.interval)
        self.worker = Worker(
            self.control.admit,
            self._reconcile,
            self.backoff,
            self._retry,
            store_serial=lambda: self.reconciler.store.meta().serial,
        )
        self.started_at = now_iso()
        self.listening: HttpFront | None = None
        self.poller: Poller | None = None
        self.watcher: Watcher | None = None
        self.last: RunReport | None = None
        self._busy_since: float | None = None  # monotonic start of the run in progress

    # -- configuration ------------------------------------------------------------------

    def _started_info(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "source": display_source(self.config.source),
            "ref": self.config.ref,
            "path": self.config.path,
            "stateDir": str(self.state_dir),
        }

    def _daemon_info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            # `fleetward status` checks the PID only on the host that wrote it; a --once
            # run is meant to have exited.
            "host": socket.gethostname(),
            "once": self.config.once,
            "startedAt": self.started_at,
            "listen": self.listening.url if self.listening else None,
            "interval": self.config.interval,
        }

    # -- running ------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or after one reconcile with --once); the exit code."""
        refuse_if_tracked(self.state_dir)  # once, at start: not on every reconcile
        # A --ref no commit can fix (`main@{1}`, `a..b`): refused now, not retried forever.
        validate_ref(self.config.ref)
        try:
            make_state_dir(self.state_dir)
        except OSError as exc:
            raise os_error(
                exc,
                UsageError,
                f"Cannot create the state directory {self.state_dir}",
                "Pass --state-dir with a writable directory.",
                self.state_dir,
            ) from exc
        with daemon_lock(self.state_dir):
            # The temp files of writes a killed daemon (or CLI) left, in every directory.
            for leftover in sweep_leftovers(self.state_dir):
                logger.info("removed a leftover temp file", extra={"fields": {"path": leftover}})
            # With replicas, the runs a stopped leader left are ended by the next leader.
            ended = (
                []
                if self.replica.lead is not None
                else self.operations.fail_unfinished(
                    now_iso(),
                    "the daemon stopped during this run (crash or kill); it was ended at the next "
                    "start. A run that reached PROCESSING may or may not have written the store: "
                    "fleetward state history tells.",
                )
            )
            for op in ended:
                logger.warning(
                    "ended an operation a previous daemon left running",
                    extra={"fields": {"operation": op.operation_id}},
                )
            self._install_signals()
            if self.config.once:
                self.reporters.daemon_started(self._started_info())
                try:
                    return self._run_once()
                finally:
                    if self.before_exit is not None:
                        self.before_exit()
            return self._serve()

    def _run_once(self) -> int:
        if self.replica.lead is not None:
            self.replica.tick()
            if not self.replica.leading:
                raise UsageError.one(
                    f"Another fleetward daemon leads the store {self.store.location}",
                    "A replica of this store holds the lead, and only the leader applies; "
                    "--once does not wait for it.",
                    "Stop the running daemons of this store first, or let them reconcile.",
                    location=self.store.location,
                )
        op = self.coalescer.request("once")
        assert op is not None
        report = self._reconcile(self.coalescer.take(0) or op)
        return 0 if report.succeeded else 1

    def _serve(self) -> int:
        self.listening = self._serve_http(self)
        started = {**self._started_info(), "pid": os.getpid(), "listen": self.listening.url}
        started |= {"store": self.store.location, "interval": f"{self.config.interval:g}s"}
        logger.info("fleetward daemon started", extra={"fields": started})
        self.reporters.daemon_started({**self._started_info(), **self._daemon_info()})
        self.replica.start(self.stopping)
        worker = threading.Thread(target=self._work, name="fleetward-worker", daemon=True)
        self.health.alive = lambda: worker.is_alive() and not self._stuck()
        worker.start()
        self.poller = Poller(self.coalescer.request, self.config.interval)
        self.poller.start()
        self._reschedule_wake()
        self._start_watcher()
        self.coalescer.request("startup")
        ready_sent = False
        ping_every = watchdog_interval()
        last_ping = 0.0
        while True:
            self._wake.wait(timeout=min(ping_every or 1.0, 1.0))
            if self._stop_signal is not None:
                name = signal.Signals(self._stop_signal).name
                logger.info("stopping", extra={"fields": {"signal": name}})
                break
            if self._reload_requested:
                self._reload_requested = False
                self._do_reload()
            if not ready_sent and self.last is not None:
                notify("READY=1", f"STATUS={logs.status_line(self.last)}")
                ready_sent = True
            if (
                ping_every
                and time.monotonic() - last_ping >= ping_every
                and worker.is_alive()
                and not self._stuck()  # no pings: systemd restarts a wedged daemon
            ):
                notify("WATCHDOG=1")
                last_ping = time.monotonic()
        return self._shutdown(worker)

    def _work(self) -> None:
        while not self.stopping.is_set():
            if not self.replica.may_run:  # a standby's queue waits for the lead
                self.stopping.wait(0.1)
                continue
            op = self.coalescer.take(timeout=1.0)
            if op is None:
                continue
            self.worker.handle(op)
            self._wake.wake()

    def _idle(self) -> bool:
        return self._busy_since is None

    def _retry(self, delay: float) -> None:
        """A run in `delay` seconds, unless the poll comes first (or the daemon stops)."""
        if self.stopping.is_set() or self.poller is None or delay >= self.config.interval:
            return
        self.poller.schedule_once(delay, "retry")

    def _stuck(self) -> bool:
        """A run has been going far longer than any run should (a hung git, a dead NFS)."""
        since = self._busy_since
        bound = max(STUCK_AFTER, 4 * self.config.git_timeout)
        return since is not None and time.monotonic() - since > bound

    def _reconcile(self, op: Operation, unchanged: AfterFetch | None = None) -> RunReport:
        self._busy_since = time.monotonic()
        try:
            report = self.reconciler.run(op, self._stop_cause, unchanged)
        finally:
            self._busy_since = None
        if report.unchanged:
            # Nothing ran: the last report (the failure) stays what health and status show.
            logger.info(
                "revision unchanged since its failure; not run again",
                extra={
                    "fields": {
                        "operation": op.operation_id,
                        "trigger": op.trigger,
                        "revision": report.revision.short if report.revision else None,
                    }
                },
            )
            return report
        self.last = report  # the engine's reporters heard of it already
        return report

    def _stop_cause(self) -> str | None:
        """The signal stopping the daemon ("SIGTERM"), or None while it runs on."""
        if not self.stopping.is_set():
            return None
        signum = self._stop_signal
        return signal.Signals(signum).name if signum is not None else "stop requested"

    def _reschedule_wake(self) -> None:
        """Wake up when a held operation's window opens (or an operator's window ends).

        Called from the worker, HTTP threads and the wake-up itself: the lock keeps a
        caller that computed an older answer from cancelling a newer one's job."""
        if self.poller is None:
            return
        with self._wake_lock:
            try:
                when = self.control.next_wake()
            except (FleetwardError, OSError) as exc:
                logger.error("cannot read the operation log to schedule windows: %s", exc)
                return
            if when is None:
                self.poller.cancel(WAKE_JOB)
            else:
                self.poller.schedule_at(when, self._wake_up, WAKE_JOB)

    def _wake_up(self) -> None:
        try:
            self.control.wake()
        except (FleetwardError, OSError) as exc:
            logger.error("cannot wake held operations: %s", exc)

    # -- triggers ---------------------------------------------------------------------------

    def _queued(self, op: Operation, reason: str) -> None:
        if reason not in _RECORDED_TRIGGERS:
            return
        try:  # callers are told its id, so it is findable at once; best effort
            self.operations.record(op)
        except (FleetwardError, OSError) as exc:
            logger.error("cannot record queued operation %s: %s", op.operation_id, exc)

    def _start_watcher(self) -> None:
        config = self.config
        if is_remote(config.source):
            return  # a remote is watched by polling and webhooks
        source = Path(config.source)
        if config.no_git:
            paths, refs_only = [source / config.path], False
        else:
            found = git_dirs(source)
            if not found:
                return
            paths, refs_only = found, True
        self.watcher = Watcher(paths, self.coalescer.request, refs_only)
        self.watcher.start()

    # -- signals, reload, stop ------------------------------------------------------------

    def _install_signals(self) -> None:
        def stop(signum: int) -> None:
            self._stop_signal = signum
            self.stopping.set()

        def hup() -> None:
            self._reload_requested = True

        install_signals(stop, hup, self._wake.fd)

    def _do_reload(self) -> None:
        if self._reload is None:
            return
        try:
            new = self._reload()
            validate_ref(new.ref)
            run_settings(new)  # signature options that cannot work are refused here
            secrets = secrets_of(new)
            if self.reconfigure is not None:
                self.reconfigure(new)  # last: nothing after it may refuse the reload
        except FleetwardError as exc:
            for p in exc.problems:
                logger.error(
                    "configuration not reloaded: %s",
                    p.error,
                    extra={"fields": {"reason": p.reason, "location": p.location or ""}},
                )
            return
        old = self.config
        new = kept_until_restart(new, old)
        if new.log_format != old.log_format:
            logs.configure(new.log_format)
        self.secrets = secrets
        self.control.default_timeout = new.operation_timeout
        self.health.ready_max_age = new.readiness_bound
        self.backoff.cap = new.interval
        if self.poller is not None and new.interval != old.interval:
            self.poller.reschedule(new.interval)
        sources_changed = run_settings(new) != run_settings(old)
        # The trusted keys' files are re-read like secret files: a refused commit may pass.
        if sources_changed or new.verify_signatures:
            self.worker.forget()  # what failed for good may pass with the new settings
        if sources_changed:
            self.reconciler.settings = run_settings(new)
            self.status.source = source_info(new)
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher = None
        self.config = new
        if sources_changed:
            self._start_watcher()
            self.coalescer.request("reload")
        logger.info("configuration reloaded", extra={"fields": {"sourceChanged": sources_changed}})

    def _shutdown(self, worker: threading.Thread) -> int:
        notify("STOPPING=1")
        deadline = time.monotonic() + STOP_DEADLINE
        if self.poller is not None:
            self.poller.stop()
        if self.watcher is not None:
            self.watcher.stop()
        unrun = self.coalescer.unrun(_RECORDED_TRIGGERS)  # closes the queue
        if self.replica.lead is not None:
            unrun = []  # the next leader adopts them from the operation log
        for op in unrun:
            try:
                self.operations.record(
                    op.move(OperationState.CANCELLED, now_iso(), "the daemon stopped first")
                )
            except FleetwardError as exc:
                logger.error("cannot record the cancelled operation: %s", exc)
        worker.join(timeout=max(0.0, deadline - time.monotonic() - 1.0))
        # A write in progress finishes; one not yet started never will.
        gate = self.reconciler.write_gate.acquire(timeout=max(0.1, deadline - time.monotonic()))
        cause = self._stop_cause() or "stop requested"
        ended: Operation | None = None
        if not gate:
            logger.error("a store write is still in progress at the stop deadline; exiting")
        elif worker.is_alive():
            # It reached no checkpoint in time (a hung fetch, one huge file): end its
            # operation here, so the next start does not take it for a crash.
            ended = self.reconciler.abandon(cause)
            logger.warning(
                "abandoning the run in progress (it had not started writing)",
                extra={"fields": {"operation": ended.operation_id if ended else None}},
            )
        # Last: `fleetward status` must say the daemon is not running from now on.
        self.reporters.daemon_stopped(cause)  # before the HTTP front stops: live pages end
        if self.listening is not None:
            self.listening.stop(timeout=max(0.1, deadline - time.monotonic()))
        logger.info("stopped")
        if gate:
            self.reconciler.write_gate.release()
        self.replica.stop()  # the lead goes to a standby at its next attempt
        return 0
