"""Daemon replicas on one PostgreSQL store: which one leads, and handing over the lead.

Every replica serves health, metrics, the read API and operator requests from
the database; only the leader's worker runs. A standby tries to take the lead
every `RETRY_SECONDS`; the leader checks its leadership session as often. On
taking the lead a replica ends, FAILURE, the runs the previous leader left
half-done (the store holds what was before them, or after: every apply is one
transaction), then runs what the operation log still holds queued, and
reconciles from the store's last applied serial. A leader whose session is gone
writes nothing more (the fence: `store.pg_leader`), lets its run fail at its next
write, and steps down once its worker is idle.

A store without replicas (the state directory) has no leadership: the daemon
always leads, and its daemon lock keeps a second one out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from fleetward.errors import FleetwardError
from fleetward.observe.health import Health
from fleetward.observe.status import StatusWriter
from fleetward.operations import Operation, OperationState
from fleetward.store import OperationStore
from fleetward.timestamps import now_iso

logger = logging.getLogger("fleetward.daemon")

S = OperationState
RETRY_SECONDS = 1.0  # as store.pg_leader.RETRY_SECONDS (the daemon does not import psycopg)
# Started by a leader that stopped before they ended: they are no one's any more.
_STARTED = frozenset(
    {S.RESOLVING, S.RESOLVED, S.DISPATCHING, S.DISPATCHED, S.PROCESSING, S.COMPLETED}
)


class Lead(Protocol):
    """A store's leadership among replicas (`PostgresStore.leadership`)."""

    @property
    def leading(self) -> bool: ...

    @property
    def lost(self) -> bool: ...

    def try_lead(self) -> bool: ...

    def still_leading(self) -> bool: ...

    def step_down(self) -> None: ...


class Queue(Protocol):
    def adopt(self, op: Operation) -> bool: ...

    def drain(self) -> list[Operation]: ...

    def request(self, reason: str) -> Operation | None: ...


class Replica:
    """This daemon's role, kept by `tick` (called every RETRY_SECONDS by its thread)."""

    def __init__(
        self,
        lead: Lead | None,
        log: OperationStore,
        queue: Queue,
        *,
        idle: Callable[[], bool],
        on_role: Callable[[str, str | None], None],
        name: str,
    ) -> None:
        self.lead = lead
        self.log = log
        self.queue = queue
        self.idle = idle  # the worker runs nothing now
        self.on_role = on_role  # (role, problem): health and metrics
        self.name = name
        self.leading = lead is None
        self.terms = 0  # times this replica took the lead
        self._thread: threading.Thread | None = None

    @property
    def may_run(self) -> bool:
        """Whether the worker may start a run: this replica leads, and no write found its
        leadership session gone since the last check (a run started then would only meet
        the fence; the next tick steps down)."""
        return self.leading and not (self.lead is not None and self.lead.lost)

    @property
    def role(self) -> str:
        return "leader" if self.leading else "standby"

    def start(self, stopping: threading.Event) -> None:
        if self.lead is None:
            return

        def loop() -> None:
            while not stopping.is_set():
                self.tick()
                stopping.wait(RETRY_SECONDS)

        self.on_role("standby", None)
        self.tick()  # the first replica up leads before it serves a request
        self._thread = threading.Thread(target=loop, name="fleetward-replica", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.lead is not None:
            self.leading = False
            self.lead.step_down()

    def tick(self) -> None:
        lead = self.lead
        if lead is None:
            return
        try:
            if self.leading:
                if lead.still_leading():
                    self._adopt()
                    return
                self.leading = False
                self.on_role("standby", None)
                logger.error(
                    "lost the lead: the leadership session ended; standing by",
                    extra={"fields": {"replica": self.name}},
                )
            if lead.lost and not self.idle():
                return  # the run in progress fails at its next write; step down after it
            if lead.lost:
                lead.step_down()
            if lead.try_lead():
                self._took_lead()
            self.on_role(self.role, None)
        except FleetwardError as exc:
            problem = exc.problems[0].error if exc.problems else str(exc)
            logger.error("replica: %s", problem)
            if self.leading:
                return
            self.on_role("standby", problem)

    def _took_lead(self) -> None:
        self.leading = True
        self.terms += 1
        self.queue.drain()  # what it queued as a standby is in the log, adopted below
        ended = self._end_orphans()
        logger.warning(
            "took the lead",
            extra={"fields": {"replica": self.name, "endedRuns": [o.operation_id for o in ended]}},
        )
        self._adopt()
        self.queue.request("leader")  # reconcile from the store's last applied serial

    def _end_orphans(self) -> list[Operation]:
        """The previous leader's half-done runs, ended FAILURE with the reason."""
        from fleetward.timestamps import now_iso

        now = now_iso()
        ended = [
            op.move(
                S.FAILURE,
                now,
                "the leader replica stopped during this run (killed, its host or its database "
                f"session lost); {self.name} took the lead. Each apply is one transaction: "
                "fleetward state history tells whether it was written.",
            )
            for op in self.log.all()
            if op.state in _STARTED
        ]
        if ended:
            self.log.record(*ended)
        return ended

    def _adopt(self) -> None:
        """Queue the operations other replicas recorded (operator requests, webhooks)."""
        for op in self.log.all():
            if op.state is S.CREATED:
                self.queue.adopt(op)


__all__ = ["RETRY_SECONDS", "Lead", "Replica"]


class RoleShown:
    """What health, metrics and the status files say this replica is. Told at every
    tick; summary.json is rewritten only when the role or the store's problem changes."""

    def __init__(self, health: Health, status: StatusWriter, name: str, store: str) -> None:
        self.health = health
        self.status = status
        self.name = name
        self.store = store  # the store's location, as status files name it
        self._last: str | None = None
        self._since: str | None = None

    def __call__(self, role: str, problem: str | None) -> None:
        changed = (self._last, self.health.store_problem) != (role, problem)
        self.health.role = role
        self.health.store_problem = problem
        if role != self._last:
            self._last, self._since = role, now_iso()
        if changed:
            self.status.replica(
                {
                    "role": role,
                    "since": self._since,
                    "name": self.name,
                    "store": self.store,
                    "problem": problem,
                }
            )
