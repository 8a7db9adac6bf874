"""One reconcile, as the daemon runs it: an Operation through every stage, with caches kept.

The caches are what make a warm run cheap. Parsed and validated files are kept
by blob id (`DocumentCache`), expanded documents by identity (`desire`'s
memo), and the store's parsed file and objects by the file's identity
(`TinyDBStore`); drift is hashed once per stored object. A one-file commit
re-reads one blob, expands one document and diffs in memory.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from fleetward.applying import ApplyResult, apply_plan, refuse_blocked
from fleetward.desire import DesiredState, Expansions, desire
from fleetward.errors import (
    FleetwardError,
    GuardBlocked,
    ManifestError,
    PlanError,
    Problem,
    SourceError,
)
from fleetward.loading import DocumentCache, Locator, load
from fleetward.model import Plan, Revision, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.pipeline import SourceOptions, git_cache, now_iso
from fleetward.planning import PlanOptions, plan
from fleetward.source import open_snapshot
from fleetward.store import TinyDBStore
from fleetward.store.operations import OperationLog
from fleetward.tuning import gc_paused

logger = logging.getLogger("fleetward.daemon")

PHASES = ("fetch", "load", "desire", "plan", "apply")
S = OperationState


@dataclass(frozen=True, slots=True)
class RunSettings:
    sources: SourceOptions
    state_dir: Path
    guards: PlanOptions = field(default_factory=PlanOptions)
    lock_timeout: float = 10.0
    git_timeout: float = 60.0


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

    @property
    def succeeded(self) -> bool:
        return self.operation.state is OperationState.SUCCESS


class Stopping(Exception):
    """The daemon is stopping and the run had not started writing: abandon it."""


@dataclass
class Reconciler:
    settings: RunSettings
    operations: OperationLog
    store: TinyDBStore = field(init=False)
    documents: DocumentCache = field(default_factory=DocumentCache)
    expansions: Expansions = field(default_factory=dict)
    # Held for the whole store write (and the final record of its operation).
    write_gate: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.store = TinyDBStore(self.settings.state_dir)

    def run(self, op: Operation, should_stop: Callable[[], bool] = lambda: False) -> RunReport:
        started = time.monotonic()
        phases: dict[str, float] = {}
        state = _RunState(op)
        try:
            self._move(state, S.RESOLVING)
            with gc_paused():
                self._resolve_and_apply(state, phases, should_stop)
        except Stopping:
            self._move(
                state, S.CANCELLED, "the daemon is stopping; the run was abandoned before its write"
            )
        except FleetwardError as exc:
            state.problems = exc.problems
            if isinstance(exc, ManifestError | PlanError):
                state.manifest_errors = len(exc.problems)
            if isinstance(exc, SourceError):
                state.fetch_failed = True
            state.op = state.op.with_errors(exc.problems)
            self._move(state, S.FAILURE, _failure_message(exc))
        except Exception as exc:  # a bug: the run fails, the daemon goes on
            logger.exception("internal error in a reconcile")
            problem = Problem(
                f"Internal error: {type(exc).__name__}: {exc}",
                "fleetward hit a bug during this run. The store write is atomic: the store "
                "holds the state from before the run or after it.",
                "Report it with the daemon's log; the next trigger runs again.",
            )
            state.problems = (problem,)
            state.op = state.op.with_errors([problem])
            self._move(state, S.FAILURE, "internal error")
        snapshot = state.store
        if snapshot is None:
            try:
                snapshot = self.store.read()
            except FleetwardError:
                snapshot = None
        return RunReport(
            operation=state.op,
            revision=state.revision,
            plan=state.plan,
            applied=state.applied,
            store=snapshot,
            problems=tuple(state.problems),
            manifest_errors=state.manifest_errors,
            fetch_failed=state.fetch_failed,
            phases=phases,
            duration=time.monotonic() - started,
        )

    def _resolve_and_apply(
        self, state: _RunState, phases: dict[str, float], should_stop: Callable[[], bool]
    ) -> None:
        sources = self.settings.sources
        clock = functools.partial(_timed, phases)
        with clock("fetch"):
            snapshot = open_snapshot(
                sources.source,
                sources.ref,
                sources.path,
                sources.no_git,
                cache_root=Path(git_cache(self.settings.state_dir)),
                git_timeout=self.settings.git_timeout,
            )
        with snapshot:
            state.revision = snapshot.revision
            state.op = _with_revision(state.op, snapshot.revision)
            with clock("load"):
                try:
                    manifests = load(snapshot, self.documents)
                finally:
                    self.documents.retain(f.blob_id for f in snapshot.files)
            with clock("desire"):
                desired: DesiredState = desire(
                    manifests.revision,
                    manifests.documents(),
                    Locator(snapshot),
                    self.expansions,
                )
        if should_stop():
            raise Stopping()
        with self.store.lock(self.settings.lock_timeout):
            with clock("plan"):
                stored = self.store.read()
                made = plan(desired, stored, now_iso(), self.settings.guards)
            state.plan = made
            state.store = stored
            state.op = _with_summary(state.op, made, stored.meta.serial)
            if made.errors:
                raise PlanError(*made.errors)
            try:
                refuse_blocked(made)
            except GuardBlocked:
                self._move(state, S.RESOLVED, "plan ready")
                raise
            self._move(state, S.RESOLVED, "plan ready")
            if not made.changes and stored.meta.last_applied_revision == made.revision.id:
                self._move(state, S.SUCCESS, f"no changes; the store matches {made.revision.short}")
                return
            # Stopping takes the gate before the process exits: a write either
            # finishes first or never starts.
            with self.write_gate:
                if should_stop():
                    raise Stopping()
                self._move(state, S.DISPATCHING)
                self._move(state, S.DISPATCHED, f"{len(made.changes)} change(s) to write")
                self._move(state, S.PROCESSING, "writing the store")
                with clock("apply"):
                    result = apply_plan(
                        made,
                        self.store,
                        now_iso(),
                        str(self.settings.state_dir),
                        snapshot=stored,
                        operation_id=state.op.operation_id,
                    )
                state.applied = result
                # The store keeps the snapshot its write produced: no re-read.
                state.store = self.store.read()
                state.op = _with_summary(state.op, made, result.meta.serial)
                self._move(state, S.COMPLETED, "store written")
                self._move(
                    state,
                    S.SUCCESS,
                    f"applied {made.revision.short} at serial {result.meta.serial}",
                )

    def _move(self, state: _RunState, to: OperationState, message: str = "") -> Operation:
        state.op = state.op.move(to, now_iso(), message)
        # Persist the start, the moment before the write, and the end: a crash in
        # between leaves a non-final record that the next start marks failed.
        if to in (S.RESOLVING, S.DISPATCHING) or to.final:
            try:
                self.operations.record(state.op)
            except FleetwardError as exc:
                # The log is a record of the work, not the work: a damaged or full
                # log must not stop reconciling. The run's report still carries it.
                logger.error(
                    "cannot record operation %s: %s",
                    state.op.operation_id,
                    exc.problems[0].error if exc.problems else exc,
                    extra={"fields": {"reason": exc.problems[0].reason if exc.problems else ""}},
                )
        return state.op


@dataclass
class _RunState:
    op: Operation
    revision: Revision | None = None
    plan: Plan | None = None
    applied: ApplyResult | None = None
    store: StoreSnapshot | None = None
    problems: tuple[Problem, ...] = ()
    manifest_errors: int = 0
    fetch_failed: bool = False


@contextmanager
def _timed(phases: dict[str, float], phase: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        phases[phase] = time.monotonic() - start


def _with_revision(op: Operation, revision: Revision) -> Operation:
    return replace(op, revision=revision.id, ref=revision.ref)


def _with_summary(op: Operation, made: Plan, serial: int) -> Operation:
    return replace(op, plan_summary=made.summary(), serial=serial)


def _failure_message(exc: FleetwardError) -> str:
    first = exc.problems[0].error if exc.problems else type(exc).__name__
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    return f"{first}{more}"
