"""The one converge path: lock → resolve → plan → decide → apply → record.

`fleetward apply` and every daemon run call `Engine.converge`; `fleetward plan`
calls its `read` and `plan` steps. What differs between those callers is handed
in, never written twice:

- a `Governor` says what a plan may write now and where a run may stop. The
  daemon's is its operations control (SyncPolicies' windows and approvals,
  suspension, operators' cancels, the stopping process); the CLI's is the
  person at the terminal, asked to confirm.
- a `Watch` hears each stage's progress (the CLI's bar); the engine adds the
  governor's checkpoints to it and times each stage for the report.
- a `Reporter` hears that a run started, that its plan is ready and how it
  finished (status files, metrics, health, logs, notifications). The engine
  never imports who they are.

The run's Operation is recorded in the store's log as the run goes: its end
always (once the store exists: a mistyped location is not created by a
failure), and with `record_progress` also its start and the moment before the
write, so a crash in between leaves a non-final record that the next daemon
start marks failed. A record that cannot be written never fails the run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from fleetward.applying import ApplyResult, apply_plan, check_current, refuse_blocked
from fleetward.decisions import Decision, describe_held
from fleetward.desire import DesiredState, Expansions
from fleetward.errors import FleetwardError, ManifestError, PlanError, Problem, SourceError
from fleetward.governance import Policy, owner_labels_of, policies_of
from fleetward.loading import DocumentCache
from fleetward.model import Guard, GuardVerdict, Plan, Revision, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.pipeline import SourceOptions, git_cache, make_plan, resolve
from fleetward.planning import PlanOptions
from fleetward.progress import SILENT, Phase, Watch
from fleetward.reporting import Reporter, Reporters
from fleetward.runs import (
    AfterFetch,
    Interrupted,
    RunReport,
    RunSettings,
    Stopping,
    Unchanged,
    stopped_message,
)
from fleetward.source import Source
from fleetward.store import OperationStore, Store
from fleetward.store.suspension import Suspension
from fleetward.timestamps import now_iso
from fleetward.tuning import gc_paused

__all__ = ["Declined", "Engine", "Governor", "Verdict"]

logger = logging.getLogger("fleetward.engine")

S = OperationState

# Where a run is while a stage runs, and the checkpoint once it is done (None: none).
_STAGES: Mapping[str, tuple[str, str | None]] = {
    "fetch": ("while fetching the source", "after fetching the source"),
    "load": ("while loading the manifests", "after loading the manifests"),
    "desire": ("while expanding the manifests", "after expanding the manifests"),
    "plan": ("while planning", None),
    "apply": ("before the write", None),
}


class Declined(Exception):
    """The person asked did not confirm the apply: the run ends CANCELLED, nothing written."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code  # what the command exits with (130: Ctrl-C at the prompt)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a governor decided of a plan: the parts due and held, and why it holds them all."""

    decision: Decision
    suspension: Suspension | None = None  # `fleetward suspend` holds every part


class Governor:
    """What a run's writes answer to. This base: nothing holds them and nothing stops the
    run, and a plan a guard blocks is refused whole; the daemon and the CLI override it."""

    def now(self) -> str:
        """The time stamped on the run's records and its plan."""
        return now_iso()

    def begin(self, op: Operation) -> None:
        """The run of `op` starts."""

    def deadline(self) -> str | None:
        """Past this instant the run ends TIMEOUT at a checkpoint (None: never)."""
        return None

    def checkpoint(self, op: Operation, where: str) -> None:
        """A safe point to stop the run, before any write: whatever this raises ends it."""

    def planned(self, plan: Plan) -> None:
        """The plan is made, before any verdict on it (the CLI shows it here)."""

    def guarded(self) -> contextlib.AbstractContextManager[object]:
        """Held from the decision through the write and settling its operations."""
        return contextlib.nullcontext()

    def decide(
        self,
        op: Operation,
        plan: Plan,
        policies: Mapping[str, Policy],
        blocked: frozenset[str],
    ) -> Verdict:
        """Which changes are due now and which are held (`blocked`: the policies whose
        own guard blocks their changes)."""
        refuse_blocked(plan)
        return Verdict(Decision(parts=(), due=plan.changes, out_of_scope=0))

    def last_look(
        self, op: Operation, decision: Decision, policies: Mapping[str, Policy]
    ) -> tuple[Decision, list[str]]:
        """The decision as it stands at the write, and the policies whose window would
        close before it ends (their parts now held)."""
        return decision, []

    def settle(
        self,
        op: Operation,
        plan: Plan,
        decision: Decision,
        serial: int | None,
        write_seconds: float = 0.0,
    ) -> None:
        """Record what became of the held parts (`serial`: the write's; None: none)."""

    def carried(self, decision: Decision) -> Decision:
        """The decision with the operation now carrying each held part, for the report."""
        return decision

    def unrecorded(self, op: Operation, error: FleetwardError) -> None:
        """The operation log refused the run's record: the run goes on regardless."""
        logger.error(
            "cannot record operation %s: %s",
            op.operation_id,
            error.problems[0].error if error.problems else error,
        )

    def end(self) -> None:
        """The run is over, however it ended."""


@dataclass(eq=False)
class _Run(Watch):
    """One run in progress: its operation and all it found, and the watch its stages call."""

    op: Operation
    governor: Governor
    outer: Watch
    after_fetch: AfterFetch | None
    existed: bool
    started: float = field(default_factory=time.monotonic)
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
    failure: BaseException | None = None
    unchanged: bool = False
    announced: bool = False
    phases: dict[str, float] = field(default_factory=dict)

    def start(self, phase: Phase, total: int) -> None:
        self.outer.start(phase, total)

    def advance(self, n: int = 1) -> None:
        self.outer.advance(n)

    def checkpoint(self) -> None:
        self.outer.checkpoint()
        self.governor.checkpoint(self.op, self.where)


@dataclass(eq=False)
class Engine:
    """The converge path over one store, with the caches that make a warm run cheap.

    Parsed files are kept by blob id (`documents`) and expanded documents by
    identity (`expansions`), so a daemon's one-file commit re-reads one blob and
    expands one document; the store keeps its own parsed snapshot."""

    store: Store
    reporter: Reporter = field(default_factory=Reporter)
    # The log runs are recorded in (None: the store's).
    operations: OperationStore | None = None
    # Record the start and the moment before the write too, not only the end.
    record_progress: bool = True
    documents: DocumentCache = field(default_factory=DocumentCache)
    expansions: Expansions = field(default_factory=dict)
    # Held for the whole store write (and the record of its operation): a stopping
    # daemon takes it, so a write either finishes first or never starts.
    write_gate: threading.Lock = field(default_factory=threading.Lock)
    _record_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _running: _Run | None = field(default=None, init=False)
    _abandoned: Operation | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.reporter, Reporters):
            self.reporter = Reporters([self.reporter])  # one that raises never fails a run
        if self.operations is None:
            self.operations = self.store.operations

    # -- the steps `fleetward plan` runs on their own ----------------------------------------

    def read(
        self,
        sources: Source,
        watch: Watch = SILENT,
        *,
        stage: Callable[[str], contextlib.AbstractContextManager[None]] | None = None,
        fetched: Callable[[Revision], None] | None = None,
    ) -> DesiredState:
        """Fetch, load and expand the revision `sources` name, with the engine's caches."""
        return resolve(
            sources, self.documents, watch, expansions=self.expansions, stage=stage, fetched=fetched
        )

    def plan(
        self,
        desired: DesiredState,
        stored: StoreSnapshot,
        guards: PlanOptions,
        now: str | None = None,
        watch: Watch = SILENT,
    ) -> Plan:
        """The plan from `stored` to `desired` (a value: nothing is written)."""
        return make_plan(desired, stored, guards, now, watch)

    # -- the converge ------------------------------------------------------------------------

    def converge(
        self,
        op: Operation,
        settings: RunSettings,
        governor: Governor | None = None,
        *,
        watch: Watch = SILENT,
        after_fetch: AfterFetch | None = None,
        saved: Callable[[], Plan] | None = None,
        where: str | None = None,
    ) -> RunReport:
        """Run `op` to a final state and report it; never raises for what the run met.

        `saved` reads a plan to apply exactly (no source is read); what it raises
        fails the run like any error. With `after_fetch`,
        the run is recorded and announced only once the revision is known and
        `after_fetch` lets it go on: a run it stops leaves no operation behind
        (unless one was recorded when it was queued, which then ends CANCELLED).
        What ended the run is the report's `failure`; the caller re-raises it if
        it must. `where` names the store in errors (default: the state directory).
        """
        governor = governor if governor is not None else Governor()
        if op.state is S.SCHEDULED:
            op = replace(op, waiting_for=())  # what it waited for is over: it runs now
        run = _Run(op, governor, watch, after_fetch, self.store.exists())
        with self._record_lock:
            self._running, self._abandoned = run, None
        governor.begin(op)
        try:
            self._move(run, S.RESOLVING, persist=after_fetch is None)
            run.op = replace(run.op, deadline=governor.deadline())
            if after_fetch is None:
                self._announce(run)
            with gc_paused():
                self._converge(run, settings, saved, where or str(settings.state_dir))
        except Stopping as exc:
            self._move(run, S.CANCELLED, stopped_message(exc.cause, exc.where))
        except Unchanged as exc:
            run.unchanged = True
            self._move(run, S.CANCELLED, exc.reason, persist=self._recorded(run.op))
        except Interrupted as exc:
            run.op = replace(run.op, ended_by=exc.by)
            self._move(run, exc.state, exc.reason)
        except Declined as exc:
            run.failure = exc
            self._move(run, S.CANCELLED, "not confirmed")
        except FleetwardError as exc:
            self._failed(run, exc)
        except KeyboardInterrupt as exc:  # Ctrl-C at a terminal: the caller re-raises it
            run.failure = exc
            self._move(run, S.CANCELLED, "not confirmed")
        except Exception as exc:  # a bug: the run fails, the caller goes on (or reports it)
            problem = Problem(
                f"Internal error: {type(exc).__name__}: {exc}",
                "fleetward hit a bug during this run. The store write is atomic: the store "
                "holds the state from before the run or after it.",
                "Report it with the daemon's log; the next trigger runs again.",
            )
            run.failure = exc
            run.problems = (problem,)
            run.op = run.op.with_errors([problem])
            self._move(run, S.FAILURE, "internal error")
        finally:
            governor.end()
            with self._record_lock:
                self._running = None
        report = self._report(run)
        if not run.unchanged:  # nothing ran: what reporters show stays the last run's
            self._announce(run)
            self.reporter.run_finished(report)
        return report

    def abandon(self, cause: str) -> Operation | None:
        """End the run in progress CANCELLED, from the thread stopping the daemon.

        For a run that reaches no checkpoint before the stop deadline (a git fetch
        that hangs, one huge file to parse). The caller holds `write_gate`, so the
        run can no longer start writing; what the run records after this is
        dropped, and the operation stays as ended here. None: no run to end."""
        with self._record_lock:
            run = self._running
            if run is None or run.op.state.final or self._abandoned is not None:
                return None
            op = run.op.move(S.CANCELLED, run.governor.now(), stopped_message(cause, run.where))
            self._abandoned = run.op = op
            self._record(run, op)
        self.reporter.run_abandoned(op)
        return op

    def _converge(
        self, run: _Run, settings: RunSettings, read_saved: Callable[[], Plan] | None, where: str
    ) -> None:
        labels = None
        desired = None
        saved = read_saved() if read_saved is not None else None
        if saved is None:
            sources = settings.sources
            if isinstance(sources, SourceOptions) and sources.cache_root is None:
                # A remote is cloned beside the store it is reconciled into.
                sources = replace(sources, cache_root=git_cache(settings.state_dir))
            desired = self.read(
                sources,
                run,
                stage=functools.partial(self._stage, run),
                fetched=functools.partial(self._fetched, run),
            )
            run.policies = {p.name: p for p in policies_of(desired.documents)}
            labels = owner_labels_of(desired.documents)
        else:
            run.revision = saved.revision
            run.op = replace(run.op, revision=saved.revision.id, ref=saved.revision.ref)
        guards = settings.guards
        if run.op.arguments.get("allowMassStop"):
            guards = replace(guards, allow_mass_stop=True)
        # A store that does not exist yet is made by the write, not before: a refused or
        # unconfirmed run leaves none behind. It is read unlocked, and the write then
        # takes the lock and checks the plan again (another process may have made it).
        held = self.store.lock(settings.lock_timeout) if run.existed else contextlib.nullcontext()
        with held:
            with self._stage(run, "plan"):
                stored = self.store.read()
                if saved is not None:
                    check_current(saved, stored.meta, where)
                    made = saved
                else:
                    assert desired is not None
                    made = self.plan(desired, stored, guards, run.governor.now(), run)
            run.plan, run.store = made, stored
            run.op = _with_summary(run.op, made, stored.meta.serial)
            run.governor.planned(made)
            if made.errors:
                raise PlanError(*made.errors)
            self._move(run, S.RESOLVED, "plan ready")
            refuse_blocked(replace(made, guards=_plan_guards(made)))
            run.governor.checkpoint(run.op, "after planning")
            run.where = "before the write"
            # Operators' cancels and approvals land wholly before the decision or wholly
            # after the write: the governor's guard spans both.
            with run.governor.guarded():
                self._decide_and_write(run, made, stored, labels, settings, where)

    def _decide_and_write(
        self,
        run: _Run,
        made: Plan,
        stored: StoreSnapshot,
        labels: Mapping[str, Mapping[str, str]] | None,
        settings: RunSettings,
        where: str,
    ) -> None:
        # A policy's own guard holds only that policy's changes (the governor decides).
        verdict = run.governor.decide(run.op, made, run.policies, _blocked_policies(made))
        decision = run.decision = verdict.decision
        run.suspension = verdict.suspension
        self.reporter.plan_ready(made, decision)
        if run.op.arguments.get("dryRun"):
            self._move(run, S.SUCCESS, _dry_run_message(made, decision))
            return
        recorded = stored.meta.last_applied_revision == made.revision.id
        if not decision.due and (made.changes or recorded or run.suspension):
            run.governor.settle(run.op, made, decision, None)
            self._move(run, S.SUCCESS, _nothing_message(made, decision, run.suspension))
            return
        fresh = contextlib.nullcontext() if run.existed else self.store.lock(settings.lock_timeout)
        with self.write_gate, fresh:
            decision, overrun = run.governor.last_look(run.op, decision, run.policies)
            run.decision = decision
            if not decision.due and made.changes:
                run.governor.settle(run.op, made, decision, None)
                self._move(
                    run,
                    S.SUCCESS,
                    f"the window of policy {', '.join(overrun)} closes before the write could "
                    "finish; held for its next window",
                )
                return
            # The guards of held policies judged changes this write leaves out.
            part = replace(made, changes=decision.due, guards=_plan_guards(made))
            self._move(run, S.DISPATCHING)
            self._move(run, S.DISPATCHED, f"{len(part.changes)} change(s) to write")
            self._move(run, S.PROCESSING, "writing the store")
            with self._stage(run, "apply"):
                result = apply_plan(
                    part,
                    self.store,
                    run.governor.now(),
                    where,
                    run,
                    snapshot=stored if run.existed else None,
                    operation_id=run.op.operation_id,
                    owner_labels=labels,
                )
            run.applied = result
            # The store keeps the snapshot its write produced: no re-read.
            run.store = self.store.read()
            run.op = _with_summary(run.op, part, result.meta.serial)
            run.governor.settle(run.op, made, decision, result.meta.serial, run.phases["apply"])
            self._move(run, S.COMPLETED, "store written")
            held = describe_held(decision)
            self._move(
                run,
                S.SUCCESS,
                f"applied {made.revision.short} at serial {result.meta.serial}"
                + (f"; {held}" if held else "")
                + (
                    f"; {decision.out_of_scope} change(s) outside the operation's query"
                    if decision.out_of_scope
                    else ""
                ),
            )

    # -- the run's stages, records and report ------------------------------------------------

    @contextlib.contextmanager
    def _stage(self, run: _Run, name: str) -> Iterator[None]:
        """Time stage `name`; once it is done, a checkpoint (for the stages that have one)."""
        during, after = _STAGES[name]
        run.where = during
        started = time.monotonic()
        try:
            yield
        finally:
            run.phases[name] = time.monotonic() - started
        if after is not None:
            run.governor.checkpoint(run.op, after)

    def _fetched(self, run: _Run, revision: Revision) -> None:
        run.revision = revision
        run.op = replace(run.op, revision=revision.id, ref=revision.ref)
        if run.after_fetch is not None:
            reason = run.after_fetch(revision)
            if reason is not None:
                raise Unchanged(reason)
            self._move(run, None)  # the start, held back until the revision was known
            self._announce(run)

    def _announce(self, run: _Run) -> None:
        if not run.announced:
            run.announced = True
            self.reporter.run_started(run.op)

    def _failed(self, run: _Run, exc: FleetwardError) -> None:
        run.failure = exc
        run.problems = exc.problems
        if isinstance(exc, ManifestError | PlanError):
            run.manifest_errors = len(exc.problems)
        if isinstance(exc, SourceError):
            run.fetch_failed = True
        run.op = run.op.with_errors(exc.problems)
        self._move(run, S.FAILURE, _failure_message(exc))

    def _move(
        self, run: _Run, to: OperationState | None, message: str = "", persist: bool = True
    ) -> Operation:
        """Move the run's operation to `to` (None: record it as it is)."""
        with self._record_lock:
            if self._abandoned is not None and run is self._running:
                run.op = self._abandoned  # the stopping daemon ended it: that record stands
                return run.op
            if to is not None:
                run.op = run.op.move(to, run.governor.now(), message)
            final = to is not None and to.final
            progress = to is None or to in (S.RESOLVING, S.DISPATCHING)
            wanted = persist and (final or (progress and self.record_progress))
            if wanted and self.store.exists():  # a failure never makes a mistyped location
                self._record(run, run.op)
            return run.op

    def _recorded(self, op: Operation) -> bool:
        """Whether the log holds `op` (recorded when queued: a webhook's, an API's)."""
        assert self.operations is not None
        try:
            return self.operations.get(op.operation_id) is not None
        except FleetwardError:
            return True  # unknown: recording its end is the safe side

    def _record(self, run: _Run, op: Operation) -> None:
        assert self.operations is not None
        try:
            self.operations.record(op)
        except FleetwardError as exc:
            # The log is a record of the work, not the work: a damaged or full log
            # must not stop reconciling. The run's report still carries it.
            run.governor.unrecorded(op, exc)

    def _report(self, run: _Run) -> RunReport:
        decision = run.decision
        if decision is not None and decision.held:
            decision = run.governor.carried(decision)
        snapshot = run.store
        if snapshot is None:
            try:
                snapshot = self.store.read()
            except FleetwardError:
                snapshot = None
        return RunReport(
            operation=run.op,
            revision=run.revision,
            plan=run.plan,
            applied=run.applied,
            store=snapshot,
            problems=tuple(run.problems),
            manifest_errors=run.manifest_errors,
            fetch_failed=run.fetch_failed,
            phases=run.phases,
            duration=time.monotonic() - run.started,
            decision=decision,
            policies=run.policies,
            suspension=run.suspension,
            failure=run.failure,
            unchanged=run.unchanged,
        )


def _with_summary(op: Operation, made: Plan, serial: int) -> Operation:
    return replace(op, plan_summary=made.summary(), serial=serial)


def _failure_message(exc: FleetwardError) -> str:
    first = exc.problems[0].error if exc.problems else type(exc).__name__
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    return f"{first}{more}"


def _plan_guards(made: Plan) -> tuple[Guard, ...]:
    return tuple(g for g in made.guards if g.policy is None)


def _blocked_policies(made: Plan) -> frozenset[str]:
    return frozenset(
        g.policy for g in made.guards if g.policy is not None and g.verdict is GuardVerdict.BLOCKED
    )


def _dry_run_message(made: Plan, decision: Decision) -> str:
    held = describe_held(decision)
    return (
        f"dry run at {made.revision.short}: {len(decision.due)} change(s) would be applied"
        + (f"; {held}" if held else "")
        + (f"; {decision.out_of_scope} outside the query" if decision.out_of_scope else "")
    )


def _nothing_message(made: Plan, decision: Decision, suspension: Suspension | None) -> str:
    if not made.changes:
        return f"no changes; the store matches {made.revision.short}"
    if suspension is not None:
        return (
            f"suspended by {suspension.by}: {len(made.changes)} change(s) planned, nothing applied"
        )
    held = describe_held(decision)
    scope = (
        f"{decision.out_of_scope} change(s) outside the operation's query"
        if decision.out_of_scope
        else ""
    )
    return "nothing to apply now; " + "; ".join(x for x in (held, scope) if x)
