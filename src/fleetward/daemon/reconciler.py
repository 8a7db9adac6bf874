"""One reconcile, as the daemon runs it: an Operation through every stage, with caches kept.

The caches are what make a warm run cheap. Parsed and validated files are kept
by blob id (`DocumentCache`), expanded documents by identity (`desire`'s
memo), and the store's parsed file and objects by the file's identity
(`TinyDBStore`, the daemon's one store); drift is hashed once per stored
object. A one-file commit re-reads one blob, expands one document and diffs in
memory.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import InitVar, dataclass, field, replace
from datetime import timedelta

from fleetward.applying import ApplyResult, apply_plan, refuse_blocked
from fleetward.daemon.admission import Interrupted
from fleetward.daemon.control import Control
from fleetward.daemon.triggers import Coalescer
from fleetward.decisions import (
    Decision,
    decide,
    describe_held,
    hold_overruns,
    with_carriers,
)
from fleetward.desire import DesiredState, Expansions
from fleetward.errors import (
    FleetwardError,
    ManifestError,
    PlanError,
    Problem,
    SourceError,
)
from fleetward.governance import Policy, owner_labels_of, policies_of
from fleetward.kinds.sync_policy import parse_device_query
from fleetward.isolation import Isolated
from fleetward.loading import DocumentCache, Locator, load
from fleetward.model import Guard, GuardVerdict, Plan, Revision, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.pipeline import (
    Isolation,
    SourceOptions,
    desire_or_isolate,
    git_cache,
    open_source,
)
from fleetward.planning import PlanOptions, plan
from fleetward.runs import (
    PHASES,
    AfterFetch,
    RunReport,
    RunSettings,
    StopCause,
    Stopping,
    Unchanged,
    stopped_message,
)
from fleetward.store import OperationStore, Store, open_store
from fleetward.store.suspension import Suspension
from fleetward.tuning import gc_paused

logger = logging.getLogger("fleetward.daemon")

S = OperationState


@dataclass
class Reconciler:
    settings: RunSettings
    operations: OperationStore
    control: Control | None = None
    # The daemon's store (whose log `operations` is); None: opened from the settings.
    opened: InitVar[Store | None] = None
    store: Store = field(init=False)
    documents: DocumentCache = field(default_factory=DocumentCache)
    expansions: Expansions = field(default_factory=dict)
    # Held for the whole store write (and the final record of its operation).
    write_gate: threading.Lock = field(default_factory=threading.Lock)
    # Serialises the records of a run with `abandon` (another thread's).
    _record_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _running: _RunState | None = field(default=None, init=False)
    _abandoned: Operation | None = field(default=None, init=False)

    def __post_init__(self, opened: Store | None) -> None:
        self.store = opened if opened is not None else open_store(self.settings.state_dir)
        if self.control is None:
            self.control = Control(
                self.operations,
                Coalescer(),
                self.settings.state_dir,
                self.settings.operation_timeout,
            )

    @property
    def ctl(self) -> Control:
        assert self.control is not None
        return self.control

    def now(self) -> str:
        return self.ctl.now_iso()

    def run(
        self,
        op: Operation,
        stop_cause: StopCause = lambda: None,
        unchanged: AfterFetch | None = None,
    ) -> RunReport:
        """Run `op` to a final state; `stop_cause` says when the daemon is stopping.

        With `unchanged`, the run is recorded only once the revision is known and
        `unchanged` lets it go on: a stopped one leaves no operation behind (unless
        one was recorded when it was queued, which then ends CANCELLED)."""
        started = time.monotonic()
        phases: dict[str, float] = {}
        if op.state is S.SCHEDULED:
            op = replace(op, waiting_for=())  # what it waited for is over: it runs now
        state = _RunState(op, after_fetch=unchanged)
        with self._record_lock:
            self._running, self._abandoned = state, None
        self.ctl.begin(op)
        try:
            self._move(state, S.RESOLVING, persist=unchanged is None)
            state.op = replace(state.op, deadline=self.ctl.deadline_iso())
            with gc_paused():
                self._resolve_and_apply(state, phases, stop_cause)
        except Stopping as exc:
            self._move(state, S.CANCELLED, stopped_message(exc.cause, exc.where))
        except Unchanged as exc:
            state.unchanged = True
            self._move(state, S.CANCELLED, exc.reason, persist=self._recorded(state.op))
        except Interrupted as exc:
            state.op = replace(state.op, ended_by=exc.by)
            self._move(state, exc.state, exc.reason)
        except FleetwardError as exc:
            state.failure = exc
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
            state.failure = exc
            state.problems = (problem,)
            state.op = state.op.with_errors([problem])
            self._move(state, S.FAILURE, "internal error")
        finally:
            self.ctl.end()
            with self._record_lock:
                self._running = None
        if state.decision is not None and state.decision.held:
            try:
                state.decision = with_carriers(state.decision, self.ctl.live_by_policy())
            except FleetwardError:
                pass  # the log is unreadable: the report keeps what the run decided
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
            decision=state.decision,
            policies=state.policies,
            suspension=state.suspension,
            failure=state.failure,
            unchanged=state.unchanged,
        )

    def abandon(self, cause: str) -> Operation | None:
        """End the run in progress CANCELLED, from the thread stopping the daemon.

        For a run that reaches no checkpoint before the stop deadline (a git fetch
        that hangs, one huge file to parse). The caller holds `write_gate`, so the
        run can no longer start writing; what the run records after this is
        dropped, and the operation stays as ended here. None: no run to end."""
        with self._record_lock:
            state = self._running
            if state is None or state.op.state.final or self._abandoned is not None:
                return None
            op = state.op.move(S.CANCELLED, self.now(), stopped_message(cause, state.where))
            self._abandoned = state.op = op
            self._record(op)
            return op

    def _resolve_and_apply(
        self, state: _RunState, phases: dict[str, float], stop_cause: StopCause
    ) -> None:
        sources = self.settings.sources
        if sources.cache_root is None:
            sources = replace(sources, cache_root=git_cache(self.settings.state_dir))
        clock = functools.partial(_timed, phases)

        def inside(where: str) -> Callable[[], None]:
            """The checkpoint a stage's loop calls: operators' stops, deadlines, SIGTERM."""
            state.where = where
            return functools.partial(self._checkpoint, state, stop_cause, where)

        state.where = "while fetching the source"
        with clock("fetch"):
            snapshot = open_source(sources)
        with snapshot:
            state.revision = snapshot.revision
            state.op = _with_revision(state.op, snapshot.revision)
            if state.after_fetch is not None:
                reason = state.after_fetch(snapshot.revision)
                if reason is not None:
                    raise Unchanged(reason)
                self._move(state, None)  # the start, held back until the revision was known
            self._checkpoint(state, stop_cause, "after fetching the source")
            with clock("load"):
                try:
                    # Tolerant: a SyncPolicy may ask for failure isolation (the same
                    # errors as a strict load when nothing does).
                    manifests = load(
                        snapshot,
                        self.documents,
                        inside("while loading the manifests"),
                        tolerate=True,
                    )
                finally:
                    self.documents.retain(f.blob_id for f in snapshot.files)
            self._checkpoint(state, stop_cause, "after loading the manifests")
            with clock("desire"):
                try:
                    resolved = desire_or_isolate(
                        manifests,
                        Locator(snapshot, self.documents),
                        self._isolation(sources, state.op),
                        self.expansions,
                        inside("while expanding the manifests"),
                    )
                except ManifestError as exc:
                    exc.revision = snapshot.revision
                    raise
        self._checkpoint(state, stop_cause, "after expanding the manifests")
        isolated = resolved if isinstance(resolved, Isolated) else None
        desired = resolved.desired if isinstance(resolved, Isolated) else resolved
        state.where = "while planning"
        control = self.ctl
        op = state.op
        query = parse_device_query(op.operation_device_query) if op.operation_device_query else None
        guards = self.settings.guards
        if op.arguments.get("allowMassStop"):
            guards = replace(guards, allow_mass_stop=True)
        state.policies = {p.name: p for p in policies_of(desired.documents)}
        with self.store.lock(self.settings.lock_timeout):
            with clock("plan"):
                stored = self.store.read()
                made = _planned(isolated, desired, stored, self.now(), guards)
            state.plan = made
            state.store = stored
            state.op = _with_summary(state.op, made, stored.meta.serial)
            if made.errors:
                raise PlanError(*made.errors)
            # A policy's own guard holds only that policy's changes (below).
            blocked = frozenset(
                g.policy
                for g in made.guards
                if g.policy is not None and g.verdict is GuardVerdict.BLOCKED
            )
            self._move(state, S.RESOLVED, "plan ready")
            refuse_blocked(replace(made, guards=_plan_guards(made)))
            self._checkpoint(state, stop_cause, "after planning")
            state.where = "before the write"
            # Operators' cancels and approvals land wholly before this decision or
            # wholly after the write: the control mutex spans both.
            with control.mutex:
                # A stop asked for while planning lands here, before the paths that
                # write nothing (a dry run, nothing due) could answer SUCCESS to it.
                control.checkpoint(state.op)
                # Read here, not before planning: a suspend written while this run
                # planned must stop its write.
                state.suspension = control.suspension()
                decision = decide(
                    made,
                    state.policies,
                    control.clock(),
                    query=query,
                    suspended=state.suspension is not None,
                    live=control.live_by_policy(),
                    rejected=control.rejected(),
                    blocked=blocked,
                )
                state.decision = decision
                if op.arguments.get("dryRun"):
                    self._move(state, S.SUCCESS, _dry_run_message(made, decision))
                    return
                recorded_revision = stored.meta.last_applied_revision == made.revision.id
                if not decision.due and (made.changes or recorded_revision or state.suspension):
                    control.settle(state.op, made, decision, written=False, serial=None)
                    self._move(state, S.SUCCESS, _nothing_message(made, decision, state))
                    return
                # Stopping takes the gate before the process exits: a write either
                # finishes first or never starts.
                with self.write_gate:
                    cause = stop_cause()
                    if cause is not None:
                        raise Stopping(cause, "before the write")
                    control.checkpoint(state.op)
                    if control.suspension() is not None:
                        raise Interrupted(
                            S.CANCELLED,
                            "the daemon was suspended (fleetward suspend) before the write; "
                            "nothing was written",
                        )
                    expected = timedelta(seconds=control.write_seconds)
                    decision, overrun = hold_overruns(
                        decision, state.policies, control.clock() + expected
                    )
                    state.decision = decision
                    if not decision.due and made.changes:
                        control.settle(state.op, made, decision, written=False, serial=None)
                        self._move(
                            state,
                            S.SUCCESS,
                            f"the window of policy {', '.join(overrun)} closes before the "
                            "write could finish; held for its next window",
                        )
                        return
                    # The guards of held policies judged changes this write leaves out.
                    part = replace(made, changes=decision.due, guards=_plan_guards(made))
                    self._move(state, S.DISPATCHING)
                    self._move(state, S.DISPATCHED, f"{len(part.changes)} change(s) to write")
                    self._move(state, S.PROCESSING, "writing the store")
                    writing = time.monotonic()
                    with clock("apply"):
                        result = apply_plan(
                            part,
                            self.store,
                            self.now(),
                            str(self.settings.state_dir),
                            snapshot=stored,
                            operation_id=state.op.operation_id,
                            owner_labels=owner_labels_of(desired.documents),
                        )
                    control.write_seconds = time.monotonic() - writing
                    state.applied = result
                    # The store keeps the snapshot its write produced: no re-read.
                    state.store = self.store.read()
                    state.op = _with_summary(state.op, part, result.meta.serial)
                    control.settle(
                        state.op, made, decision, written=True, serial=result.meta.serial
                    )
                    self._move(state, S.COMPLETED, "store written")
                    held = describe_held(decision)
                    self._move(
                        state,
                        S.SUCCESS,
                        f"applied {made.revision.short} at serial {result.meta.serial}"
                        + _held_back(made)
                        + (f"; {held}" if held else "")
                        + (
                            f"; {decision.out_of_scope} change(s) outside the operation's query"
                            if decision.out_of_scope
                            else ""
                        ),
                    )

    def _isolation(self, sources: SourceOptions, op: Operation) -> Isolation:
        """Failure isolation for this run: on everywhere with --isolate-failures, else
        where an isolateFailures SyncPolicy asks for it."""
        guards = self.settings.guards
        if op.arguments.get("allowMassStop"):
            guards = replace(guards, allow_mass_stop=True)
        return Isolation(
            self.settings.isolate_failures, self.store.read, guards, self.now(), sources
        )

    def _checkpoint(self, state: _RunState, stop_cause: StopCause, where: str) -> None:
        cause = stop_cause()
        if cause is not None:
            raise Stopping(cause, where)
        self.ctl.checkpoint(state.op)

    def _move(
        self,
        state: _RunState,
        to: OperationState | None,
        message: str = "",
        persist: bool = True,
    ) -> Operation:
        """Move the run's operation to `to` (None: record it as it is)."""
        with self._record_lock:
            if self._abandoned is not None and state is self._running:
                state.op = self._abandoned  # the stopping daemon ended it: that record stands
                return state.op
            if to is not None:
                state.op = state.op.move(to, self.now(), message)
            # Persist the start, the moment before the write, and the end: a crash in
            # between leaves a non-final record that the next start marks failed.
            if persist and (to is None or to in (S.RESOLVING, S.DISPATCHING) or to.final):
                self._record(state.op)
            return state.op

    def _recorded(self, op: Operation) -> bool:
        """Whether the log holds `op` (recorded when queued: a webhook's, an API's)."""
        try:
            return self.operations.get(op.operation_id) is not None
        except FleetwardError:
            return True  # unknown: recording its end is the safe side

    def _record(self, op: Operation) -> None:
        try:
            self.operations.record(op)
        except FleetwardError as exc:
            # The log is a record of the work, not the work: a damaged or full
            # log must not stop reconciling. The run's report still carries it.
            logger.error(
                "cannot record operation %s: %s",
                op.operation_id,
                exc.problems[0].error if exc.problems else exc,
                extra={"fields": {"reason": exc.problems[0].reason if exc.problems else ""}},
            )


@dataclass
class _RunState:
    op: Operation
    after_fetch: AfterFetch | None = None
    revision: Revision | None = None
    plan: Plan | None = None
    applied: ApplyResult | None = None
    store: StoreSnapshot | None = None
    problems: tuple[Problem, ...] = ()
    manifest_errors: int = 0
    fetch_failed: bool = False
    decision: Decision | None = None
    policies: dict[str, Policy] = field(default_factory=dict)
    suspension: Suspension | None = None
    where: str = "before fetching the source"  # the stage the run is in, for `abandon`
    failure: Exception | None = None
    unchanged: bool = False


@contextmanager
def _timed(phases: dict[str, float], phase: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        phases[phase] = time.monotonic() - start


def _planned(
    isolated: Isolated | None,
    desired: DesiredState,
    stored: StoreSnapshot,
    now: str,
    guards: PlanOptions,
) -> Plan:
    """The run's plan: failure isolation's, while the store is the one it planned against
    (re-planned with the same documents held if it moved), else planned here."""
    if isolated is None:
        return plan(desired, stored, now, guards)
    same = isolated.stored.meta
    if (same.lineage, same.serial) == (stored.meta.lineage, stored.meta.serial):
        return isolated.plan
    return plan(desired, stored, now, guards, held=isolated.plan.held)


def _held_back(made: Plan) -> str:
    """The documents failure isolation held back, for the operation's message."""
    if not made.held:
        return ""
    return "; held back: " + ", ".join(h.address for h in made.held)


def _with_revision(op: Operation, revision: Revision) -> Operation:
    return replace(op, revision=revision.id, ref=revision.ref)


def _with_summary(op: Operation, made: Plan, serial: int) -> Operation:
    return replace(op, plan_summary=made.summary(), serial=serial)


def _failure_message(exc: FleetwardError) -> str:
    first = exc.problems[0].error if exc.problems else type(exc).__name__
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    return f"{first}{more}"


def _plan_guards(made: Plan) -> tuple[Guard, ...]:
    return tuple(g for g in made.guards if g.policy is None)


def _dry_run_message(made: Plan, decision: Decision) -> str:
    held = describe_held(decision)
    return (
        f"dry run at {made.revision.short}: {len(decision.due)} change(s) would be applied"
        + (f"; {held}" if held else "")
        + (f"; {decision.out_of_scope} outside the query" if decision.out_of_scope else "")
    )


def _nothing_message(made: Plan, decision: Decision, state: _RunState) -> str:
    if not made.changes:
        return f"no changes; the store matches {made.revision.short}" + _held_back(made)
    if state.suspension is not None:
        return (
            f"suspended by {state.suspension.by}: {len(made.changes)} change(s) planned, "
            "nothing applied"
        )
    held = describe_held(decision)
    scope = (
        f"{decision.out_of_scope} change(s) outside the operation's query"
        if decision.out_of_scope
        else ""
    )
    return "nothing to apply now; " + "; ".join(x for x in (held, scope) if x)


__all__ = ["Reconciler"]
