"""Reporters: who hears what a run did, without the engine knowing who they are.

The converge path (`engine`) calls a `Reporter` at the moments a run changes
state: it started, its plan is ready, it finished (applied, failed, held or
nothing to do — all read off the `RunReport`), in that order, each at most
once. A daemon run that stops as soon as it finds the revision that already
failed unchanged reports nothing (nothing ran). A run the stopping daemon
abandons is reported by `run_abandoned`, and after it by nothing at all: no
`run_started` (a run abandoned during its fetch was never announced), no
`plan_ready`, no `run_finished`. Status files, metrics, health and
notifications are reporters; the engine never imports them, the composition
root hands them in. A daemon also tells its reporters when it starts and stops.

A reporter is called on the run's thread and must be quick: one that talks to
the network queues the work and returns. A reporter that raises does not fail
the run — `Reporters` logs it and tells the others, the way a failed status
file write is reported rather than fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fleetward.decisions import Decision
from fleetward.model import Plan
from fleetward.operations import Operation
from fleetward.runs import RunReport

__all__ = ["Reporter", "Reporters"]

log = logging.getLogger(__name__)


class Reporter:
    """Every hook, doing nothing: a reporter overrides the ones it cares about."""

    def daemon_started(self, info: Mapping[str, Any]) -> None:
        """The daemon is up (`info`: version, source, state location)."""

    def run_started(self, operation: Operation) -> None:
        """A run began; `operation` is its record (PENDING/RUNNING, trigger, revision if known)."""

    def plan_ready(self, plan: Plan, decision: Decision | None) -> None:
        """The run's plan is made; `decision` splits it into parts written and parts held."""

    def run_finished(self, report: RunReport) -> None:
        """The run ended: applied, failed, held or no changes, as `report` says."""

    def run_abandoned(self, operation: Operation) -> None:
        """The stopping daemon ended the run in progress (`operation`, CANCELLED) because it
        reached no checkpoint in time. The last hook of that run: it may come before
        `run_started` (abandoned during its fetch) and is followed by no other."""

    def daemon_stopped(self, cause: str) -> None:
        """The daemon is stopping (`cause`: "SIGTERM", "SIGINT", …)."""


class Reporters(Reporter):
    """Several reporters as one, in order; one that raises is logged and skipped."""

    def __init__(self, reporters: Iterable[Reporter] = ()) -> None:
        self._reporters = tuple(reporters)

    def __iter__(self) -> Any:
        return iter(self._reporters)

    def add(self, reporter: Reporter) -> None:
        """Tell `reporter` too, after the others (one built from what the daemon made)."""
        self._reporters = (*self._reporters, reporter)

    def daemon_started(self, info: Mapping[str, Any]) -> None:
        self._each("daemon_started", info)

    def run_started(self, operation: Operation) -> None:
        self._each("run_started", operation)

    def plan_ready(self, plan: Plan, decision: Decision | None) -> None:
        self._each("plan_ready", plan, decision)

    def run_finished(self, report: RunReport) -> None:
        self._each("run_finished", report)

    def run_abandoned(self, operation: Operation) -> None:
        self._each("run_abandoned", operation)

    def daemon_stopped(self, cause: str) -> None:
        self._each("daemon_stopped", cause)

    def _each(self, hook: str, *args: Any) -> None:
        for reporter in self._reporters:
            try:
                getattr(reporter, hook)(*args)
            except Exception:  # a reporter's failure is its own, never the run's
                log.exception("reporter %s failed in %s", type(reporter).__name__, hook)
