"""What a daemon run is given and what it reports: settings, the report, early stops.

The reporters (status files, metrics, health, logs) read `RunReport`; the run
loop reads its `failure` (whose retry role decides what follows) and `unchanged`.
These values sit above the engine and below both the daemon that makes them and
the observers that read them, so `observe` never imports `daemon`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleetward.applying import ApplyResult
from fleetward.decisions import Decision
from fleetward.errors import Problem
from fleetward.model import Plan, Revision, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.planning import PlanOptions
from fleetward.policy import Policy
from fleetward.source import Source
from fleetward.store import Pin
from fleetward.store.suspension import Suspension

PHASES = ("fetch", "load", "desire", "plan", "apply")


@dataclass(frozen=True, slots=True)
class RunSettings:
    sources: Source
    state_dir: Path
    guards: PlanOptions = field(default_factory=PlanOptions)
    lock_timeout: float = 10.0
    operation_timeout: float = 600.0  # seconds a run may take before it ends TIMEOUT
    # Failure isolation for every document (--isolate-failures); SyncPolicies with
    # isolateFailures ask for it per document either way.
    isolate_failures: bool = False
    # Obey the store's rollback pin: read the pinned revision instead of `sources`' ref
    # (the daemon does; a hand-run apply reads the --ref it was given).
    follow_pin: bool = False


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one run did, for the reporters (status files, metrics, logs)."""

    operation: Operation
    revision: Revision | None  # the revision the source resolved to (None: fetch failed)
    plan: Plan | None
    applied: ApplyResult | None
    store: StoreSnapshot | None  # the store as the run left it
    problems: tuple[Problem, ...]
    manifest_errors: int
    fetch_failed: bool
    phases: Mapping[str, float]  # seconds per phase that ran
    duration: float
    # What the run's plan split into: parts written and parts held (None: no plan).
    decision: Decision | None = None
    policies: Mapping[str, Policy] = field(default_factory=dict)
    suspension: Suspension | None = None  # while `fleetward suspend` holds
    pin: Pin | None = None  # the rollback pin the run obeyed (`fleetward rollback`)
    # What ended the run (FAILURE: its retry role decides; a declined or interrupted
    # apply: CANCELLED), for the caller to act on or re-raise.
    failure: BaseException | None = None
    # It stopped after the fetch: the revision is one whose failure waits for a change.
    unchanged: bool = False
    # Each manifest document's address → the file declaring it at `revision` ("Fleet/north"
    # → "manifests/fleets/north.yaml"); empty when the run read no manifests.
    documents: Mapping[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.operation.state is OperationState.SUCCESS


class Interrupted(Exception):
    """A run stopped at a checkpoint: cancelled, failed or timed out by request or deadline."""

    def __init__(self, state: OperationState, reason: str, by: str | None = None) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason
        self.by = by


class Stopping(Exception):
    """The daemon is stopping and the run had not started writing: abandon it."""

    def __init__(self, cause: str, where: str) -> None:
        super().__init__(cause, where)
        self.cause = cause  # what stops the daemon: "SIGTERM", "SIGINT"
        self.where = where  # the checkpoint the run stopped at


class Unchanged(Exception):
    """The source is still at a revision whose failure waits for a change: stop."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Why the daemon is stopping ("SIGTERM"), or None while it is not: checked at
# every checkpoint of a run.
StopCause = Callable[[], str | None]
# Asked once the source is read: why the run stops there (the revision already
# failed in a way only a change can fix), or None to go on.
AfterFetch = Callable[[Revision], str | None]


def stopped_message(cause: str, where: str) -> str:
    """The message of a run the daemon's stop cancelled before its write."""
    return f"daemon stopped ({cause}) before the write; the run was abandoned {where}"


__all__ = [
    "PHASES",
    "AfterFetch",
    "Interrupted",
    "RunReport",
    "RunSettings",
    "StopCause",
    "Stopping",
    "Unchanged",
    "stopped_message",
]
