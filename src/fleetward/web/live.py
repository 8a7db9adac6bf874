"""What the web view knows beyond the store: the runs it heard of, their plans, who listens.

`LiveView` is a reporter. The daemon tells it when a run ends; it keeps the
reports the pages read (the last run, the last one that read the source, the
last one that planned), the plans of recent operations (the operation log keeps
only their summaries), which file declares each manifest document, and a
version number that moves with every run. Pages listening for live updates
(Server-Sent Events) are woken on their own event loop; a report never waits
for them. `prepare` is handed each new report on a thread of its own, so the
object index is built off the run's path and off the request's; the version
moves, and listeners are woken, once it is done, so a page that refreshes on
the event sees the new index.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fleetward.decisions import Decision, Part
from fleetward.model import Plan
from fleetward.reporting import Reporter
from fleetward.runs import RunReport

logger = logging.getLogger(__name__)

PLANS_KEPT = 20  # operations whose full plan the pages can show; older ones show a summary


@dataclass(frozen=True, slots=True)
class KeptPlan:
    """The plan an operation made or carries, and the decision that split it."""

    plan: Plan
    decision: Decision | None
    part: Part | None = None  # set for an operation that carries a held part


class Subscription:
    """One page listening for runs: woken on its own event loop, from any thread."""

    def __init__(self, view: LiveView, loop: asyncio.AbstractEventLoop) -> None:
        self._view = view
        self._loop = loop
        self._event = asyncio.Event()

    def notify(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:  # the loop has closed: the page is gone
            self._view.unsubscribe(self)

    async def wait(self, timeout: float) -> bool:
        """Whether a run ended (or the view closed) within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True


class LiveView(Reporter):
    def __init__(
        self, prepare: Callable[[RunReport], None] | None = None, kept: int = PLANS_KEPT
    ) -> None:
        self._lock = threading.Lock()
        # Handed each report on a thread of its own (the composition root sets it).
        self.prepare = prepare
        self._kept = kept
        self.version = 0
        self.closed = False
        self.last: RunReport | None = None
        self.read: RunReport | None = None  # the last run that read the source
        self.planned: RunReport | None = None  # the last run that made a plan
        self.documents: Mapping[str, str] = {}
        self.documents_revision: str | None = None
        self._plans: OrderedDict[str, KeptPlan] = OrderedDict()
        self._subscribers: set[Subscription] = set()
        self._preparing = threading.Lock()

    # -- the reporter ------------------------------------------------------------------

    def run_finished(self, report: RunReport) -> None:
        with self._lock:
            self.last = report
            if not report.fetch_failed and report.revision is not None:
                self.read = report
            if report.plan is not None:
                self.planned = report
                self._keep(report.operation.operation_id, KeptPlan(report.plan, report.decision))
                for part in report.decision.held if report.decision is not None else ():
                    if part.operation_id is not None:
                        carried = replace(report.plan, changes=part.changes)
                        self._keep(part.operation_id, KeptPlan(carried, report.decision, part))
            if report.documents:
                self.documents = report.documents
                self.documents_revision = report.revision.id if report.revision else None
        prepare = self.prepare
        if prepare is None:
            self._publish()
            return
        threading.Thread(
            target=self._prepare_and_publish,
            args=(prepare, report),
            name="fleetward-web",
            daemon=True,
        ).start()

    def daemon_stopped(self, cause: str) -> None:
        """Live pages end their streams, so the HTTP front stops without waiting on them."""
        with self._lock:
            self.closed = True
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.notify()

    # -- what the pages read -----------------------------------------------------------

    def plan_of(self, operation_id: str) -> KeptPlan | None:
        with self._lock:
            return self._plans.get(operation_id)

    def kept_plans(self) -> list[KeptPlan]:
        """The plans kept for operations, oldest first."""
        with self._lock:
            return list(self._plans.values())

    def event(self) -> dict[str, Any]:
        """The last run as the live stream announces it."""
        with self._lock:
            report = self.last
            version = self.version
        if report is None:
            return {"version": version}
        op = report.operation
        return {
            "version": version,
            "operation": op.operation_id,
            "state": op.state.name,
            "revision": report.revision.short if report.revision else None,
        }

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._subscribers)

    # -- inside ------------------------------------------------------------------------

    def _keep(self, operation_id: str, kept: KeptPlan) -> None:
        self._plans[operation_id] = kept
        self._plans.move_to_end(operation_id)
        while len(self._plans) > self._kept:
            self._plans.popitem(last=False)

    def _publish(self) -> None:
        """A new version: wake every listening page."""
        with self._lock:
            self.version += 1
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.notify()

    def _prepare_and_publish(self, prepare: Callable[[RunReport], None], report: RunReport) -> None:
        # One run's preparation at a time, in order: a slow build is not overtaken.
        with self._preparing:
            try:
                prepare(report)
            except Exception:  # a page builds what it needs itself; this only warms it
                logger.exception("preparing the web view after a run failed")
            self._publish()


__all__ = ["PLANS_KEPT", "KeptPlan", "LiveView", "Subscription"]
