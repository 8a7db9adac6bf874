"""The notifier: a `Reporter` that turns runs into events and queues them for delivery.

On the run's thread it only derives the events (`EventLog`), picks the
targets whose filter and selectors want each one (a commit-status target only
what changes its commit's status: `statuses`), and appends them to the
store's outbox in one write; a sender thread per target delivers them
(`delivery`). The outbox is read again at start: what a stopped daemon had not
delivered goes out after the restart, each entry once.

A reload (`reconfigure`) reads every target and secret first and raises,
changing nothing, if one is bad; then it swaps the senders, waiting briefly
for the old ones to end so one target never has two, and the event being retried
keeps its attempt count. Entries of a target that is gone are dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleetward.decisions import Decision
from fleetward.errors import FleetwardError
from fleetward.model import Plan
from fleetward.notify.delivery import HeadAttempts, Sender, TargetStats
from fleetward.notify.events import Event, EventLog, matches
from fleetward.notify.settings import Target, TargetSettings, prepare
from fleetward.notify.statuses import CommitStatuses
from fleetward.operations import Operation
from fleetward.reporting import Reporter
from fleetward.runs import RunReport
from fleetward.store import OutboxEntry, Store
from fleetward.timestamps import now_iso

logger = logging.getLogger(__name__)

STOP_FLUSH = 2.0  # seconds a stopping daemon gives its senders to empty the outbox
# Seconds a reload waits for the old senders to end (one waiting out a backoff ends at
# once; one in a request ends when it is answered or times out, after the wait if need be).
RELOAD_JOIN = 2.0
_STATE_FORMAT = 1  # of the document the store keeps (`_remember`)


class Notifier(Reporter):
    """Notifications as a reporter (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        targets: Sequence[TargetSettings],
        source: Mapping[str, Any],
        external_url: str | None = None,
    ) -> None:
        self.store = store
        self.events = EventLog(source, external_url)
        self.stats: dict[str, TargetStats] = {}
        # Called (from sender threads) when a delivery outcome changes what status shows.
        self.on_change: Callable[[], None] = lambda: None
        self._lock = threading.Lock()  # the senders, swapped by a reload
        self._send_locks: dict[str, threading.Lock] = {}
        self._heads: dict[str, HeadAttempts] = {}  # per target, kept across reloads
        self._senders: dict[str, Sender] = {}
        self._targets: tuple[Target, ...] = prepare(targets)
        self._started = False
        # What each commit-status target last said per revision; only runs' hooks (one
        # run at a time) read or change it.
        self._statuses: dict[str, CommitStatuses] = {}
        # What was told, as the store keeps it (None: not read back yet); runs' hooks only.
        self._told: dict[str, Any] | None = None

    # -- the Reporter hooks ------------------------------------------------------------

    def daemon_started(self, info: Mapping[str, Any]) -> None:
        self._recall()
        if self.events.external_url is None and isinstance(info.get("listen"), str):
            self.events.external_url = str(info["listen"]).rstrip("/")  # links: its own API
        self.start()
        self._queue([self.events.daemon("daemon-started", info)])

    def run_started(self, operation: Operation) -> None:
        self._recall()
        self.events.started(operation)

    def plan_ready(self, plan: Plan, decision: Decision | None) -> None:
        self._recall()
        self._queue(self.events.planning(plan, decision))
        self._remember()

    def run_finished(self, report: RunReport) -> None:
        self._recall()
        self._queue(self.events.finished(report))
        self._remember()
        if self._targets or self.stats:  # no targets: summary.json has nothing to show
            self.on_change()

    def daemon_stopped(self, cause: str) -> None:
        self._queue([self.events.daemon("daemon-stopped", {"cause": cause})])
        self.close(STOP_FLUSH)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start a sender per target; drop what the outbox holds for targets now gone."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self._drop_unknown({t.name for t in self._targets})
            for target in self._targets:
                self._start_sender(target)

    def reconfigure(self, targets: Sequence[TargetSettings]) -> None:
        """Take new targets: FleetwardError (and nothing changed) if one cannot work."""
        ready = prepare(targets)
        with self._lock:
            old = list(self._senders.values())
            self._targets = ready
            if not self._started:
                return
            self._senders = {}
            for sender in old:
                sender.close()
        # Outside the lock: a run queueing events is not held up by a sender's request.
        _join(old, RELOAD_JOIN)
        with self._lock:
            if not self._started or self._senders:
                return  # closed meanwhile, or another reload started the senders
            self._drop_unknown({t.name for t in self._targets})
            for target in self._targets:
                self._start_sender(target)
        self.on_change()

    def close(self, flush: float = 0.0) -> None:
        """Stop the senders, first giving them up to `flush` seconds to empty the outbox."""
        deadline = time.monotonic() + flush
        while flush and time.monotonic() < deadline and self._backlog_of_live():
            time.sleep(0.05)
        with self._lock:
            senders = list(self._senders.values())
            self._senders = {}
            self._started = False
        for sender in senders:
            sender.close()

    @property
    def targets(self) -> tuple[Target, ...]:
        return self._targets

    # -- observing ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The `notifications` section of status/summary.json (no URL, no secret)."""
        pending = self._pending_counts()
        return {
            "targets": {
                name: {**stats.to_dict(), "pending": pending.get(name, 0)}
                for name, stats in sorted(self.stats.items())
            },
            "pending": sum(pending.values()),
        }

    def collector(self) -> Collector:
        return _NotifyCollector(self)

    # -- inside -------------------------------------------------------------------------

    def _queue(self, events: Iterable[Event]) -> None:
        listed = list(events)
        picked = {target.name: self._picked(target, listed) for target in self._targets}
        entries = [
            OutboxEntry(f"{event['id']}:{target.name}", target.name, event, now_iso())
            for event in listed  # in the order they happened, across targets
            for target in self._targets
            if event["id"] in picked[target.name]
        ]
        if not entries:
            return
        try:
            dropped = self.store.outbox_add(entries)
        except (FleetwardError, OSError) as exc:
            logger.error("cannot queue %d notifications: %s", len(entries), exc)
            for entry in entries:
                self._stats_of(entry.target).dropped += 1
            return
        for target, count in sorted(dropped.items()):
            self._stats_of(target).dropped += count
            logger.warning(
                "the notification outbox of target %s is full: dropped its %d oldest",
                target,
                count,
            )
        with self._lock:
            for entry in entries:
                sender = self._senders.get(entry.target)
                if sender is not None:
                    sender.wake.set()

    def _recall(self) -> None:
        """Read back what a previous daemon told (once): a restart does not tell a failing
        revision's failure, a held part or a commit's status again."""
        if self._told is not None:
            return
        self._told = {}
        try:
            doc = self.store.notify_state()
        except (FleetwardError, OSError) as exc:
            logger.error("cannot read what notifications were told: %s", exc)
            return
        if doc is None:
            return
        try:
            self.events.restore(doc["events"])
            for name, said in dict(doc["statuses"]).items():
                self._statuses.setdefault(str(name), CommitStatuses()).restore(said)
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("ignoring the notification state, which cannot be read: %r", exc)
            return
        self._told = doc

    def _remember(self) -> None:
        """Keep what was told in the store, when it changed (after the events were queued:
        a crash between the two tells an event again rather than losing it)."""
        doc = {
            "format": _STATE_FORMAT,
            "events": self.events.remembered(),
            "statuses": {name: kept.said() for name, kept in sorted(self._statuses.items())},
        }
        if doc == self._told:
            return
        try:
            self.store.set_notify_state(doc)
        except (FleetwardError, OSError) as exc:
            logger.error("cannot keep what notifications were told: %s", exc)
            return
        self._told = doc

    def _picked(self, target: Target, events: list[Event]) -> set[str]:
        """The ids of the events `target` is sent: its filter and selectors decide, and
        for a commit status also what its commit shows already."""
        settings = target.settings
        wanted = [
            e for e in events if matches(e, settings.wanted, settings.policies, settings.kinds)
        ]
        if settings.is_commit_status and wanted:
            wanted = self._statuses.setdefault(target.name, CommitStatuses()).select(wanted)
        return {str(e["id"]) for e in wanted}

    def _start_sender(self, target: Target) -> None:
        """Under the lock."""
        stats = self._stats_of(target.name)
        stats.kind = target.settings.type
        lock = self._send_locks.setdefault(target.name, threading.Lock())
        head = self._heads.setdefault(target.name, HeadAttempts())
        sender = Sender(target, self.store, stats, lock, head, on_change=lambda: self.on_change())
        self._senders[target.name] = sender
        sender.start()

    def _stats_of(self, name: str) -> TargetStats:
        kind = next((t.settings.type for t in self._targets if t.name == name), "")
        return self.stats.setdefault(name, TargetStats(kind))

    def _drop_unknown(self, known: set[str]) -> None:
        gone = [e for e in self.store.outbox_pending() if e.target not in known]
        if not gone:
            return
        self.store.outbox_remove({e.entry_id for e in gone})
        for entry in gone:
            self._stats_of(entry.target).dropped += 1
        logger.warning(
            "dropped %d queued notifications of targets no longer configured: %s",
            len(gone),
            ", ".join(sorted({e.target for e in gone})),
        )

    def _pending_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            for entry in self.store.outbox_pending():
                counts[entry.target] = counts.get(entry.target, 0) + 1
        except (FleetwardError, OSError) as exc:
            logger.error("cannot read the notification outbox: %s", exc)
        return counts

    def _backlog_of_live(self) -> bool:
        with self._lock:
            live = set(self._senders)
        return any(self._pending_counts().get(name) for name in live)


def _join(senders: Sequence[Sender], within: float) -> None:
    """Wait up to `within` seconds in all for the closed `senders`' threads to end."""
    deadline = time.monotonic() + within
    for sender in senders:
        sender.join(max(0.0, deadline - time.monotonic()))


class _NotifyCollector(Collector):
    """fleetward_notifications_total{target,result} and fleetward_notification_outbox."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def collect(self) -> Iterable[Metric]:
        totals = CounterMetricFamily(
            "fleetward_notifications",
            "Notification deliveries by target and result: delivered, failed (an attempt "
            "that will be retried or was the last), dropped (given up).",
            labels=["target", "result"],
        )
        stats = dict(self.notifier.stats)
        for name, one in sorted(stats.items()):
            totals.add_metric([name, "delivered"], one.delivered)
            totals.add_metric([name, "failed"], one.failed)
            totals.add_metric([name, "dropped"], one.dropped)
        yield totals
        backlog = GaugeMetricFamily(
            "fleetward_notification_outbox",
            "Notifications waiting in the outbox, by target.",
            labels=["target"],
        )
        pending = self.notifier._pending_counts()
        for name in sorted(set(stats) | set(pending)):
            backlog.add_metric([name], pending.get(name, 0))
        yield backlog


__all__ = ["RELOAD_JOIN", "STOP_FLUSH", "Notifier"]
