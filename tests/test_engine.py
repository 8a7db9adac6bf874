"""The one converge path, in-process: `Engine.converge` over the in-memory store and source.

What `fleetward apply` and every daemon run share, without a process, a Git
repository or a state directory: a revision is created, updated or left alone;
bad input writes nothing and is recorded as a FAILURE operation; a stale plan
and a blocked one are refused; the governor can stop or hold a run; reporters
hear each run in order, and one that raises does not fail it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fleetward.decisions import Decision, Part
from fleetward.engine import Declined, Engine, Governor, Verdict
from fleetward.engine import converge as converge_module
from fleetward.errors import GuardBlocked, ManifestError, SourceError, StalePlanError
from fleetward.model import Plan
from fleetward.operations import Operation, OperationState
from fleetward.planning import PlanOptions
from fleetward.policy import Policy
from fleetward.progress import Phase, Watch
from fleetward.reporting import Reporter
from fleetward.runs import Interrupted, RunReport, RunSettings, Stopping
from fleetward.source import MemorySource, unknown_revision
from fleetward.store import MemoryStore

S = OperationState
NOW = "2026-01-01T00:00:00Z"


def fleet(name: str, *assets: tuple[str, str]) -> str:
    """A Fleet of (externalAssetId, model) assets."""
    lines = "".join(
        f"    - externalAssetId: {ident}\n      attributes: {{model: {model}}}\n"
        for ident, model in assets
    )
    return f"apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: {name}\nspec:\n  assets:\n{lines}"


class World:
    """A source, a store and the engine over them, as `apply` or a daemon run uses it."""

    def __init__(self, reporter: Reporter | None = None) -> None:
        self.source = MemorySource()
        self.store = MemoryStore()
        self.engine = Engine(self.store, reporter or Reporter())
        self.settings = RunSettings(self.source, Path("memory"), PlanOptions())

    def commit(self, **files: str) -> str:
        return self.source.commit({f"manifests/{n}.yaml": t for n, t in files.items()}).id

    def run(self, governor: Governor | None = None, **kwargs: Any) -> RunReport:
        return self.engine.converge(
            Operation.new("test", NOW), self.settings, governor, where="memory:", **kwargs
        )

    def objects(self) -> dict[str, Any]:
        return {str(k): o for k, o in self.store.read().objects.items()}

    def recorded(self, report: RunReport) -> Operation:
        found = self.store.operations.get(report.operation.operation_id)
        assert found is not None
        return found


@pytest.fixture
def world() -> World:
    return World()


# -- create, update, no change -------------------------------------------------------------------


def test_a_revision_is_created_then_updated_then_left_alone(world: World) -> None:
    first = world.commit(north=fleet("north", ("A-1", "FH16"), ("A-2", "FH16")))
    created = world.run()
    assert created.operation.state is S.SUCCESS, created.operation.message
    assert created.plan is not None and created.plan.summary()["create"] == 2
    assert created.applied is not None and created.applied.wrote
    assert set(world.objects()) == {"Asset/A-1", "Asset/A-2"}
    meta = world.store.meta()
    assert (meta.serial, meta.last_applied_revision) == (1, first)
    assert world.recorded(created).state is S.SUCCESS
    assert created.operation.revision == first

    world.commit(north=fleet("north", ("A-1", "FH16"), ("A-2", "FH13")))
    updated = world.run()
    assert updated.operation.state is S.SUCCESS
    assert updated.plan is not None and updated.plan.summary()["update"] == 1
    assert world.objects()["Asset/A-2"].spec["attributes"]["model"] == "FH13"
    assert world.store.meta().serial == 2

    same = world.run()
    assert same.operation.state is S.SUCCESS
    assert same.operation.message.startswith("no changes; the store matches")
    assert same.applied is None
    assert world.store.meta().serial == 2  # nothing written
    assert len(world.store.history()) == 2


def test_every_applied_run_passes_through_the_apply_states(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "FH16")))
    report = world.run()
    states = [t.state for t in world.recorded(report).transitions]
    assert states == [
        S.CREATED,
        S.RESOLVING,
        S.RESOLVED,
        S.DISPATCHING,
        S.DISPATCHED,
        S.PROCESSING,
        S.COMPLETED,
        S.SUCCESS,
    ]
    assert set(report.phases) == {"fetch", "load", "desire", "plan", "apply"}


# -- bad input writes nothing --------------------------------------------------------------------


def test_a_manifest_error_writes_nothing_and_records_a_failure(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "FH16")))
    world.run()
    before = world.store.read()
    world.commit(north="apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: north\n")
    report = world.run()
    assert report.operation.state is S.FAILURE
    assert isinstance(report.failure, ManifestError)
    assert report.manifest_errors == len(report.problems) >= 1
    assert report.plan is None
    after = world.store.read()
    assert after.meta == before.meta and after.objects.keys() == before.objects.keys()
    recorded = world.recorded(report)
    assert recorded.state is S.FAILURE and recorded.error_count >= 1
    assert ":" in (report.problems[0].location or "")  # file:line:column


def test_a_stale_saved_plan_is_refused_and_nothing_is_written(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "FH16")))
    plan = world.engine.plan(world.engine.read(world.source), world.store.read(), PlanOptions())
    world.run()  # the store moves on to serial 1; the plan was made at serial 0
    meta = world.store.meta()
    report = world.run(saved=lambda: plan)
    assert report.operation.state is S.FAILURE
    assert isinstance(report.failure, StalePlanError)
    assert world.store.meta() == meta
    assert world.recorded(report).state is S.FAILURE


def test_a_blocked_guard_refuses_the_whole_plan(world: World) -> None:
    world.commit(north=fleet("north", *((f"A-{i}", "FH16") for i in range(20))))
    world.run()
    world.commit(north=fleet("north", ("A-0", "FH16")))  # 19 of 20 assets stopped
    report = world.run()
    assert report.operation.state is S.FAILURE
    assert isinstance(report.failure, GuardBlocked)
    assert report.plan is not None and report.plan.blocked
    assert world.store.meta().serial == 1
    assert all(o.state.value == "active" for o in world.objects().values())


# -- the governor: stops, holds, confirmation ----------------------------------------------------


class Holding(Governor):
    """Holds every change, as a closed window would."""

    def decide(
        self, op: Operation, plan: Plan, policies: Mapping[str, Policy], blocked: frozenset[str]
    ) -> Verdict:
        part = Part(None, plan.changes, "digest", ("window",))
        return Verdict(Decision((part,), (), 0))


def test_a_held_plan_writes_nothing_and_succeeds(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "FH16")))
    report = world.run(Holding())
    assert report.operation.state is S.SUCCESS
    assert report.operation.message.startswith("nothing to apply now")
    assert report.decision is not None and report.decision.held_count() == 1
    assert world.store.meta().serial == 0 and world.objects() == {}


class StopAt(Governor):
    def __init__(self, where: str) -> None:
        self.where = where
        self.seen: list[str] = []

    def checkpoint(self, op: Operation, where: str) -> None:
        self.seen.append(where)
        if where == self.where:
            raise Interrupted(S.CANCELLED, f"stopped {where}", by="operator")


def test_a_checkpoint_stops_the_run_before_the_write(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "FH16")), south=fleet("south", ("B-1", "X")))
    stop = StopAt("after loading the manifests")
    report = world.run(stop)
    assert report.operation.state is S.CANCELLED
    assert report.operation.ended_by == "operator"
    assert stop.seen[0] == "after fetching the source"
    assert "while loading the manifests" in stop.seen  # the loader's own checkpoints
    assert world.store.meta().serial == 0
    assert world.recorded(report).state is S.CANCELLED


class Declining(Governor):
    def decide(
        self, op: Operation, plan: Plan, policies: Mapping[str, Policy], blocked: frozenset[str]
    ) -> Verdict:
        raise Declined(1)


def test_a_declined_apply_is_cancelled_and_writes_nothing(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "FH16")))
    report = world.run(Declining())
    assert report.operation.state is S.CANCELLED
    assert report.operation.message == "not confirmed"
    assert isinstance(report.failure, Declined) and report.failure.exit_code == 1
    assert world.store.meta().serial == 0


def test_the_watch_hears_every_phase_applying_last(world: World) -> None:
    class Phases(Watch):
        def __init__(self) -> None:
            self.started: list[tuple[Phase, int]] = []

        def start(self, phase: Phase, total: int) -> None:
            self.started.append((phase, total))

    world.commit(north=fleet("north", ("A-1", "FH16"), ("A-2", "FH16")))
    watch = Phases()
    world.run(watch=watch)
    assert [p for p, _ in watch.started] == [
        Phase.READING,
        Phase.VALIDATING,
        Phase.PLANNING,
        Phase.APPLYING,
    ]
    assert watch.started[-1] == (Phase.APPLYING, 2)


# -- reporters -----------------------------------------------------------------------------------


class Recording(Reporter):
    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []

    def run_started(self, operation: Operation) -> None:
        self.heard.append(("run_started", operation))

    def plan_ready(self, plan: Plan, decision: Decision | None) -> None:
        self.heard.append(("plan_ready", (plan, decision)))

    def run_finished(self, report: RunReport) -> None:
        self.heard.append(("run_finished", report))


def test_reporters_hear_start_plan_and_finish_in_order() -> None:
    heard = Recording()
    world = World(heard)
    world.commit(north=fleet("north", ("A-1", "FH16")))
    report = world.run()
    assert [hook for hook, _ in heard.heard] == ["run_started", "plan_ready", "run_finished"]
    started = heard.heard[0][1]
    assert started.operation_id == report.operation.operation_id
    assert started.state is S.RESOLVING
    plan, decision = heard.heard[1][1]
    assert plan is report.plan and decision is not None and len(decision.due) == 1
    assert heard.heard[2][1] is report
    assert report.operation.state is S.SUCCESS and report.store is not None
    assert report.store.meta.serial == 1


def test_a_run_that_fails_before_planning_reports_start_and_finish() -> None:
    heard = Recording()
    world = World(heard)
    world.commit(north="kind: [")
    report = world.run()
    assert [hook for hook, _ in heard.heard] == ["run_started", "run_finished"]
    assert heard.heard[1][1] is report and report.operation.state is S.FAILURE


def test_a_reporter_that_raises_does_not_fail_the_run() -> None:
    class Broken(Reporter):
        def run_started(self, operation: Operation) -> None:
            raise RuntimeError("boom")

        def plan_ready(self, plan: Plan, decision: Decision | None) -> None:
            raise RuntimeError("boom")

        def run_finished(self, report: RunReport) -> None:
            raise RuntimeError("boom")

    heard = Recording()
    from fleetward.reporting import Reporters

    world = World(Reporters([Broken(), heard]))
    world.commit(north=fleet("north", ("A-1", "FH16")))
    report = world.run()
    assert report.operation.state is S.SUCCESS
    assert world.store.meta().serial == 1
    assert [hook for hook, _ in heard.heard] == ["run_started", "plan_ready", "run_finished"]


def test_a_single_reporter_that_raises_does_not_fail_the_run() -> None:
    class Broken(Reporter):
        def run_finished(self, report: RunReport) -> None:
            raise RuntimeError("boom")

    world = World(Broken())
    world.commit(north=fleet("north", ("A-1", "FH16")))
    assert world.run().operation.state is S.SUCCESS


# -- the CLI's recording: the end only, and never a store a failure would create -----------------


def test_without_progress_records_only_the_end() -> None:
    world = World()
    world.engine = Engine(world.store, record_progress=False)

    recorded: list[OperationState] = []
    original = world.store.operations.record

    def spy(*ops: Operation) -> None:
        recorded.extend(o.state for o in ops)
        original(*ops)

    world.store.operations.record = spy  # type: ignore[method-assign]
    world.commit(north=fleet("north", ("A-1", "FH16")))
    world.run()
    assert recorded == [S.SUCCESS]


# -- rollback: any source can be read at a revision and pinned there ------------------------------


def rollback_op(to: str, serial: int = 1) -> Operation:
    op = Operation.new("rollback", NOW)
    return replace(op, arguments={"rollbackTo": to, "rollbackSerial": serial, "rollbackBy": "ops"})


def test_a_rollback_reads_its_revision_from_a_memory_source_and_pins_it(world: World) -> None:
    v1 = world.commit(north=fleet("north", ("A-1", "V1")))
    world.run()
    world.commit(north=fleet("north", ("A-1", "V2")))
    world.run()
    report = world.engine.converge(rollback_op(v1), world.settings, where="memory:")
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert report.operation.revision == v1
    assert world.objects()["Asset/A-1"].spec["attributes"] == {"model": "V1"}
    pin = world.store.pin()
    assert pin is not None and pin.revision == v1 and pin.by == "ops"


def test_a_revision_the_memory_source_lacks_is_an_unknown_revision(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "V1")))
    world.run()
    report = world.engine.converge(rollback_op("0" * 40), world.settings, where="memory:")
    assert report.operation.state is S.FAILURE
    assert isinstance(report.failure, SourceError) and unknown_revision(report.failure)
    assert world.store.pin() is None and world.store.meta().serial == 1


def test_a_held_rollback_pins_and_is_not_a_success(world: World) -> None:
    v1 = world.commit(north=fleet("north", ("A-1", "V1")))
    world.run()
    world.commit(north=fleet("north", ("A-1", "V2")))
    world.run()
    report = world.engine.converge(rollback_op(v1), world.settings, Holding(), where="memory:")
    assert report.operation.state is S.CANCELLED
    assert report.operation.message.startswith(f"held: the store is pinned to {v1[:7]}")
    pin = world.store.pin()
    assert pin is not None and pin.revision == v1
    assert world.objects()["Asset/A-1"].spec["attributes"] == {"model": "V2"}


# -- Ctrl-C: where it landed, and whether the write may have happened ---------------------------


class CtrlCAtPlan(Governor):
    def planned(self, plan: Plan) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_before_the_write_says_where_and_that_nothing_was_written(world: World) -> None:
    world.commit(north=fleet("north", ("A-1", "FH16")))
    report = world.run(CtrlCAtPlan())
    assert report.operation.state is S.CANCELLED
    assert report.operation.message == "interrupted (Ctrl-C) while planning; nothing was written"
    assert isinstance(report.failure, KeyboardInterrupt)


@pytest.mark.parametrize("written", [False, True])
def test_ctrl_c_during_a_rollbacks_write_keeps_the_pin_only_if_the_write_happened(
    world: World, monkeypatch: pytest.MonkeyPatch, written: bool
) -> None:
    v1 = world.commit(north=fleet("north", ("A-1", "V1")))
    world.run()
    world.commit(north=fleet("north", ("A-1", "V2")))
    world.run()
    real = converge_module.apply_plan

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        if written:
            real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(converge_module, "apply_plan", interrupted)
    report = world.engine.converge(rollback_op(v1), world.settings, where="memory:")
    assert report.operation.state is S.CANCELLED
    assert report.operation.message.startswith(
        "interrupted (Ctrl-C) during the store write; the write may have happened"
    )
    assert world.recorded(report).message == report.operation.message
    pin = world.store.pin()
    assert world.store.meta().serial == (3 if written else 2)
    assert (pin.revision if pin is not None else None) == (v1 if written else None)


# -- an abandoned run reports nothing more --------------------------------------------------------


class Abandoning(Reporter):
    """Hears every run hook, `run_abandoned` included, in order."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def run_started(self, operation: Operation) -> None:
        self.heard.append("run_started")

    def plan_ready(self, plan: Plan, decision: Decision | None) -> None:
        self.heard.append("plan_ready")

    def run_finished(self, report: RunReport) -> None:
        self.heard.append("run_finished")

    def run_abandoned(self, operation: Operation) -> None:
        self.heard.append("run_abandoned")


class StoppingDaemon(Holding):
    """The stopping daemon's governor: `abandon_at` ("fetch" or "decide") is where the
    stopping thread abandons the run; its next checkpoint stops it, as the daemon's does."""

    def __init__(self, engine: Engine, abandon_at: str) -> None:
        self.engine = engine
        self.abandon_at = abandon_at
        self.stopped = False

    def stop(self) -> None:
        assert self.engine.abandon("SIGTERM") is not None
        self.stopped = True

    def checkpoint(self, op: Operation, where: str) -> None:
        if self.stopped:
            raise Stopping("SIGTERM", where)

    def decide(
        self, op: Operation, plan: Plan, policies: Mapping[str, Policy], blocked: frozenset[str]
    ) -> Verdict:
        if self.abandon_at == "decide":
            self.stop()  # abandoned while deciding: nothing due is written after it
        return super().decide(op, plan, policies, blocked)


def test_a_run_abandoned_during_its_fetch_is_never_announced() -> None:
    heard = Abandoning()
    world = World(heard)
    world.commit(north=fleet("north", ("A-1", "FH16")))
    governor = StoppingDaemon(world.engine, "fetch")

    def after_fetch(revision: object) -> None:
        governor.stop()  # the daemon stops while the revision is being fetched

    report = world.engine.converge(
        Operation.new("poll", NOW), world.settings, governor, after_fetch=after_fetch
    )
    assert heard.heard == ["run_abandoned"]
    assert report.operation.state is S.CANCELLED
    assert report.operation.message.startswith("daemon stopped (SIGTERM)")
    assert world.store.meta().serial == 0


def test_a_run_abandoned_after_its_start_reports_nothing_more() -> None:
    heard = Abandoning()
    world = World(heard)
    world.commit(north=fleet("north", ("A-1", "FH16")))
    report = world.run(StoppingDaemon(world.engine, "decide"))
    assert heard.heard == ["run_started", "run_abandoned"]
    assert report.operation.state is S.CANCELLED
    assert world.recorded(report).message == report.operation.message
    assert world.store.meta().serial == 0


def test_a_targeted_run_leaves_the_last_applied_revision_to_a_whole_one(world: World) -> None:
    v1 = world.commit(north=fleet("north", ("A-1", "V1")))
    world.run()
    v2 = world.commit(north=fleet("north", ("A-1", "V2")))
    targeted = replace(Operation.new("test", NOW), arguments={"targets": ["Asset/A-1"]})
    report = world.engine.converge(targeted, world.settings, where="memory:")
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.objects()["Asset/A-1"].spec["attributes"] == {"model": "V2"}
    assert world.store.meta().last_applied_revision == v1  # v2 is not all there as far as it knows
    # The next whole run has nothing to change, and records that the store is at v2.
    whole = world.run()
    assert whole.operation.state is S.SUCCESS
    assert whole.plan is not None and not whole.plan.changes
    assert (world.store.meta().serial, world.store.meta().last_applied_revision) == (3, v2)
    assert "targeted" not in world.store.history()[-1]
