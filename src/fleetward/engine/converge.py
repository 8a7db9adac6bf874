"""The converge: lock → resolve → plan → decide → apply → record, for every caller.

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

Two kinds of run read something other than the settings' ref (any `Source`,
opened `at` that revision): a rollback
(its operation's `rollbackTo`) reads the revision it returns to and pins the
store there just before its write; while a pin holds, a run that follows it
(`RunSettings.follow_pin`: the daemon's) reads the pinned revision, and ends
CANCELLED if the pin changed while it read. A targeted run (the operation's
`targets`) plans only what they select (`fleetward.targeting`).

The run's Operation is recorded in the store's log as the run goes, and its
reporters told, by `engine.records`; the pin around a rollback's write is
`engine.pinning`'s.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from fleetward.applying import apply_plan, check_current, refuse_blocked
from fleetward.decisions import Decision, describe_held
from fleetward.desire import DesiredState, Expansions
from fleetward.engine.governor import Declined, Governor
from fleetward.engine.pinning import pin_store, refuse_moved_pin, unpin_on_failure
from fleetward.engine.records import Records
from fleetward.engine.run import (
    STAGES,
    Run,
    blocked_policies,
    dry_run_message,
    held_back,
    interrupted_message,
    nothing_message,
    plan_guards,
    with_summary,
    with_targets,
)
from fleetward.errors import FleetwardError, PlanError, Problem
from fleetward.isolation import Isolated
from fleetward.kinds import KindCaches
from fleetward.loading import DocumentCache
from fleetward.model import Plan, Revision, StoreSnapshot
from fleetward.operations import Operation, OperationState
from fleetward.pipeline import (
    Isolation,
    SourceOptions,
    git_cache,
    make_plan,
    past_of,
    resolve,
    resolve_isolating,
)
from fleetward.planning import PlanOptions
from fleetward.policy import owner_labels_of, policies_of
from fleetward.progress import SILENT, Watch
from fleetward.reporting import Reporter, Reporters
from fleetward.rollback import pinned_sources, rollback_of
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
from fleetward.store import OperationStore, Pin, Store
from fleetward.targeting import Target, parse_targets, target_plan
from fleetward.timestamps import now_iso
from fleetward.tuning import gc_paused

__all__ = ["Engine", "Resolved"]


S = OperationState

# What the read step gives the plan step: the desired state, or (failure isolation on
# for some document) the desired state of the documents it applies and its plan.
Resolved = DesiredState | Isolated


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
    caches: KindCaches = field(default_factory=KindCaches)  # the kinds', kept run to run
    # Held for the whole store write (and the record of its operation): a stopping
    # daemon takes it, so a write either finishes first or never starts.
    write_gate: threading.Lock = field(default_factory=threading.Lock)
    _records: Records = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.reporter, Reporters):
            self.reporter = Reporters([self.reporter])  # one that raises never fails a run
        if self.operations is None:
            self.operations = self.store.operations
        self._records = Records(self.store, self.operations, self.reporter, self.record_progress)

    # -- the steps `fleetward plan` runs on their own ----------------------------------------

    def read(
        self,
        sources: Source,
        watch: Watch = SILENT,
        *,
        stage: Callable[[str], contextlib.AbstractContextManager[None]] | None = None,
        fetched: Callable[[Revision], None] | None = None,
        isolation: Isolation | None = None,
    ) -> Resolved:
        """Fetch, load and expand the revision `sources` name, with the engine's caches.

        With `isolation` (see `isolation`), a revision with invalid documents that
        isolation covers (every one with --isolate-failures, or those an isolating
        SyncPolicy selects) comes back `Isolated`: planned without them, against the
        store as read now. Otherwise every error in the revision is raised."""
        if isolation is None:
            return resolve(
                sources,
                self.documents,
                watch,
                expansions=self.expansions,
                stage=stage,
                fetched=fetched,
                caches=self.caches,
            )
        return resolve_isolating(
            sources,
            isolation,
            self.documents,
            watch,
            expansions=self.expansions,
            stage=stage,
            fetched=fetched,
            caches=self.caches,
        )

    def isolation(
        self, sources: Source, everywhere: bool, guards: PlanOptions, now: str | None = None
    ) -> Isolation:
        """Failure isolation over this engine's store: for every document (`everywhere`:
        --isolate-failures), else for those an isolateFailures SyncPolicy selects."""
        return Isolation(everywhere, self.store.read, guards, now or now_iso(), past_of(sources))

    @staticmethod
    def plan(
        resolved: Resolved,
        stored: StoreSnapshot,
        guards: PlanOptions,
        now: str | None = None,
        watch: Watch = SILENT,
        targets: Sequence[Target] = (),
    ) -> Plan:
        """The plan from `stored` to what was read (a value: nothing is written), limited
        to `targets` and what they need when there are any. It reads no store, so `plan
        --base` plans from another revision (`as_stored`) through it too.

        Isolation planned against the store as it read it: that plan stands while the
        store is the same one; a store written since is planned again, the same
        documents held."""
        if not isinstance(resolved, Isolated):
            made = make_plan(resolved, stored, guards, now, watch)
            return target_plan(made, targets, resolved.objects, stored.objects)
        same = resolved.stored.meta
        if (same.lineage, same.serial) == (stored.meta.lineage, stored.meta.serial):
            made = resolved.plan
        else:
            held = resolved.plan.held
            made = make_plan(resolved.desired, stored, guards, now, watch, held=held)
        return target_plan(made, targets, resolved.desired.objects, stored.objects)

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
        it must. `where` names the store in errors (default: the store's location).
        """
        governor = governor if governor is not None else Governor()
        if op.state is S.SCHEDULED:
            op = replace(op, waiting_for=())  # what it waited for is over: it runs now
        run = Run(op, governor, watch, after_fetch, self.store.exists())
        self._records.begin(run)
        governor.begin(op)
        try:
            self._records.move(run, S.RESOLVING, persist=after_fetch is None)
            run.op = replace(run.op, deadline=governor.deadline())
            if after_fetch is None:
                self._records.announce(run)
            with gc_paused():
                self._converge(run, settings, saved, where or self.store.location)
        except Stopping as exc:
            self._records.move(run, S.CANCELLED, stopped_message(exc.cause, exc.where))
        except Unchanged as exc:
            run.unchanged = True
            self._records.move(run, S.CANCELLED, exc.reason, persist=self._records.recorded(run.op))
        except Interrupted as exc:
            run.op = replace(run.op, ended_by=exc.by)
            self._records.move(run, exc.state, exc.reason)
        except Declined as exc:
            run.failure = exc
            self._records.move(run, S.CANCELLED, "not confirmed")
        except FleetwardError as exc:
            self._records.failed(run, exc)
        except KeyboardInterrupt as exc:  # Ctrl-C at a terminal: the caller re-raises it
            run.failure = exc
            self._records.move(run, S.CANCELLED, interrupted_message(run))
        except Exception as exc:  # noqa: BLE001  # a bug: the run fails, the caller goes on
            problem = Problem(
                f"Internal error: {type(exc).__name__}: {exc}",
                "fleetward hit a bug during this run. The store write is atomic: the store "
                "holds the state from before the run or after it.",
                "Report it with the daemon's log; the next trigger runs again.",
            )
            run.failure = exc
            run.problems = (problem,)
            run.op = run.op.with_errors([problem])
            self._records.move(run, S.FAILURE, "internal error")
        finally:
            governor.end()
            self._records.end()
        report = self._records.report(run)
        if not run.unchanged:  # nothing ran: what reporters show stays the last run's
            self._records.finished(run, report)
        return report

    def abandon(self, cause: str) -> Operation | None:
        """End the run in progress CANCELLED, from the thread stopping the daemon.

        For a run that reaches no checkpoint before the stop deadline (a git fetch
        that hangs, one huge file to parse). The caller holds `write_gate`, so the
        run can no longer start writing; what the run records after this is
        dropped, and the operation stays as ended here; reporters hear `run_abandoned`
        and nothing more of that run. None: no run to end."""
        return self._records.abandon(cause)

    def _converge(
        self, run: Run, settings: RunSettings, read_saved: Callable[[], Plan] | None, where: str
    ) -> None:
        labels = None
        resolved: Resolved | None = None
        guards = settings.guards
        if run.op.arguments.get("allowMassStop"):
            guards = replace(guards, allow_mass_stop=True)
        saved = read_saved() if read_saved is not None else None
        rollback = rollback_of(run.op, run.governor.now())
        targets = parse_targets(run.op.arguments.get("targets") or ())
        if settings.follow_pin:
            run.pin = self.store.pin()
        if saved is None:
            sources = pinned_sources(settings.sources, rollback or run.pin)
            if isinstance(sources, SourceOptions) and sources.cache_root is None:
                # A remote is cloned beside the store it is reconciled into.
                sources = replace(sources, cache_root=git_cache(settings.state_dir))
            resolved = self.read(
                sources,
                run,
                stage=functools.partial(self._stage, run),
                fetched=functools.partial(self._fetched, run),
                isolation=self.isolation(
                    sources, settings.isolate_failures, guards, run.governor.now()
                ),
            )
            desired = resolved.desired if isinstance(resolved, Isolated) else resolved
            run.policies = {p.name: p for p in policies_of(desired.documents)}
            run.documents = {doc.address: path for path, doc in desired.documents}
            labels = owner_labels_of(desired.documents)
        else:
            run.revision = saved.revision
            run.op = replace(run.op, revision=saved.revision.id, ref=saved.revision.ref)
        # A store that does not exist yet is made by the write, not before: a refused or
        # unconfirmed run leaves none behind. It is read unlocked, and the write then
        # takes the lock and checks the plan again (another process may have made it).
        held = self.store.lock(settings.lock_timeout) if run.existed else contextlib.nullcontext()
        with held:
            if settings.follow_pin and rollback is None:
                refuse_moved_pin(run.pin, self.store.pin())
            with self._stage(run, "plan"):
                stored = self.store.read()
                if saved is not None:
                    check_current(saved, stored.meta, where)
                    made = saved
                else:
                    assert resolved is not None
                    now = run.governor.now()
                    made = self.plan(resolved, stored, guards, now, run, targets)
            run.plan, run.store = made, stored
            run.op = with_summary(with_targets(run.op, made), made, stored.meta.serial)
            run.governor.planned(made)
            if made.errors:
                raise PlanError(*made.errors)
            self._records.move(run, S.RESOLVED, "plan ready")
            refuse_blocked(replace(made, guards=plan_guards(made)))
            run.governor.checkpoint(run.op, "after planning")
            run.where = "before the write"
            # Operators' cancels and approvals land wholly before the decision or wholly
            # after the write: the governor's guard spans both.
            with run.governor.guarded():
                self._decide_and_write(run, made, stored, labels, settings, where, rollback)

    def _decide_and_write(
        self,
        run: Run,
        made: Plan,
        stored: StoreSnapshot,
        labels: Mapping[str, Mapping[str, str]] | None,
        settings: RunSettings,
        where: str,
        rollback: Pin | None = None,
    ) -> None:
        # A policy's own guard holds only that policy's changes (the governor decides).
        verdict = run.governor.decide(run.op, made, run.policies, blocked_policies(made))
        decision = run.decision = verdict.decision
        run.suspension = verdict.suspension
        self._records.tell(run, self.reporter.plan_ready, made, decision)
        if run.op.arguments.get("dryRun"):
            self._records.move(run, S.SUCCESS, dry_run_message(made, decision))
            return
        recorded = stored.meta.last_applied_revision == made.revision.id
        # A targeted plan with nothing to do writes nothing: its revision is not what the
        # store now equals.
        if not decision.due and (made.changes or recorded or made.targeted or run.suspension):
            if rollback is not None:
                self._rollback_nothing_due(run, made, stored, decision, rollback)
                return
            run.governor.settle(run.op, made, decision, None)
            self._records.move(run, S.SUCCESS, nothing_message(made, decision, run.suspension))
            return
        fresh = contextlib.nullcontext() if run.existed else self.store.lock(settings.lock_timeout)
        with self.write_gate, fresh:
            decision, overrun = run.governor.last_look(run.op, decision, run.policies)
            run.decision = decision
            if not decision.due and made.changes:
                run.governor.settle(run.op, made, decision, None)
                self._records.move(
                    run,
                    S.SUCCESS,
                    f"the window of policy {', '.join(overrun)} closes before the write could "
                    "finish; held for its next window",
                )
                return
            # The guards of held policies judged changes this write leaves out.
            part = replace(made, changes=decision.due, guards=plan_guards(made))
            self._records.move(run, S.DISPATCHING)
            self._records.move(run, S.DISPATCHED, f"{len(part.changes)} change(s) to write")
            self._records.move(run, S.PROCESSING, "writing the store")
            pinned_before: Pin | None = None
            if rollback is not None:
                # The pin goes with the write (undone if the write fails): a daemon run
                # that read another revision meanwhile sees it under the lock and stops.
                pinned_before = self.store.pin()
                rollback = pin_store(self.store, run, rollback, stored)
            with (
                self._stage(run, "apply"),
                unpin_on_failure(self.store, rollback, pinned_before, stored.meta.serial),
            ):
                result = apply_plan(
                    part,
                    self.store,
                    run.governor.now(),
                    where,
                    run,
                    snapshot=stored if run.existed else None,
                    operation_id=run.op.operation_id,
                    owner_labels=labels,
                    history_note={"rollbackTo": rollback.serial} if rollback else None,
                )
            run.applied = result
            # The store keeps the snapshot its write produced: no re-read.
            run.store = self.store.read()
            run.op = with_summary(run.op, part, result.meta.serial)
            run.governor.settle(run.op, made, decision, result.meta.serial, run.phases["apply"])
            self._records.move(run, S.COMPLETED, "store written")
            held = describe_held(decision)
            targeted = f", targeted ({', '.join(made.targeted)})" if made.targeted else ""
            self._records.move(
                run,
                S.SUCCESS,
                f"applied {made.revision.short} at serial {result.meta.serial}{targeted}"
                + held_back(made)
                + (f"; {held}" if held else "")
                + (
                    f"; {decision.out_of_scope} change(s) outside the operation's query"
                    if decision.out_of_scope
                    else ""
                ),
            )

    def _rollback_nothing_due(
        self, run: Run, made: Plan, stored: StoreSnapshot, decision: Decision, rollback: Pin
    ) -> None:
        """A rollback that writes nothing now still pins the store (under its lock): the
        daemon then reconciles that revision, so what the governor holds stays held for
        it, and the operations carrying it run the rollback once released. Only a
        suspended daemon neither writes nor pins."""
        if run.suspension is not None:
            run.governor.settle(run.op, made, decision, None)
            self._records.move(
                run,
                S.CANCELLED,
                f"suspended by {run.suspension.by}: nothing was written and the store was not "
                "pinned; roll back again after fleetward resume",
            )
            return
        with self.write_gate:
            run.governor.last_look(run.op, decision, run.policies)  # a stop lands before the pin
            pin_store(self.store, run, rollback, stored)
        run.governor.settle(run.op, made, decision, None)
        short = made.revision.short
        if not made.changes:
            self._records.move(
                run, S.SUCCESS, f"no changes; the store matches {short}; pinned there"
            )
            return
        self._records.move(
            run,
            S.CANCELLED,
            f"held: the store is pinned to {short}, and the rollback's {len(made.changes)} "
            f"change(s) wait ({describe_held(decision)}); the operations carrying them roll "
            "back when approved or in their window",
        )

    # -- the run's stages, records and report ------------------------------------------------

    @contextlib.contextmanager
    def _stage(self, run: Run, name: str) -> Iterator[None]:
        """Time stage `name`; once it is done, a checkpoint (for the stages that have one)."""
        during, after = STAGES[name]
        run.where = during
        started = time.monotonic()
        try:
            yield
        finally:
            run.phases[name] = time.monotonic() - started
        if after is not None:
            run.governor.checkpoint(run.op, after)

    def _fetched(self, run: Run, revision: Revision) -> None:
        run.revision = revision
        run.op = replace(run.op, revision=revision.id, ref=revision.ref)
        if run.after_fetch is not None:
            reason = run.after_fetch(revision)
            if reason is not None:
                raise Unchanged(reason)
            self._records.move(run, None)  # the start, held back until the revision was known
            self._records.announce(run)
