"""Sync policies and operations control (issue 7), with a controllable clock.

Everything is real but time: repositories built with the `git` binary in
tmp_path, a state directory, a `Reconciler` + `Control` + `Coalescer` +
`OperationLog` wired as the daemon wires them, status files written by
`StatusWriter` after every run (as `daemon/runner.py` does). The clock is a
mutable callable: windows open and close, deadlines pass, without sleeping.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from daemon_support import GitRepo, sample
from support import isolated_env

from fleetward.cli import cli
from fleetward.engine import converge as engine_module
from fleetward import pipeline as pipeline_module
from fleetward.daemon import reconciler as reconciler_module
from fleetward.daemon.control import (
    Control,
    ConvergeRequest,
    decide,
    hold_overruns,
)
from fleetward.daemon.reconciler import Reconciler
from fleetward.daemon.triggers import Coalescer
from fleetward.errors import (
    FleetwardError,
    OperationConflict,
    OperationNotFound,
    RequestRefused,
    Unavailable,
)
from fleetward.http.refusals import refusal_status
from fleetward.kinds.sync_policy import SyncPolicySpec
from fleetward.observe import status as status_module
from fleetward.observe.health import Health
from fleetward.observe.metrics import Metrics
from fleetward.observe.status import StatusWriter
from fleetward.operations import Operation, OperationState
from fleetward.pipeline import SourceOptions
from fleetward.policy import Governance, Policy, parse_device_query
from fleetward.runs import RunReport, RunSettings
from fleetward.store import RejectionFile, TinyDBStore
from fleetward.store.operations import OperationLog
from fleetward.store.suspension import Suspension, clear_suspension, write_suspension

S = OperationState
UTC = dt.UTC
NOON = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday; the nightly window is closed
WINDOW_OPENS = dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
IN_WINDOW = dt.datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
WINDOW_CLOSES = dt.datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
NIGHTLY = {"type": "WINDOW", "cron": "0 2 * * *", "duration": "2h", "timezone": "UTC"}


# -- manifests ---------------------------------------------------------------------------------


def asset(
    ident: str,
    model: str = "FH16",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "externalAssetId": ident,
        "name": f"Truck {ident}",
        "type": "truck",
        "attributes": {"model": model},
        "labels": dict(labels or {}),
    }


def fleet(
    name: str, assets: list[dict[str, Any]], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "fleetward/v1",
        "kind": "Fleet",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {"assets": assets},
    }


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fleetward/v1",
        "kind": "SyncPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def yaml_docs(*docs: Mapping[str, Any]) -> str:
    """JSON is YAML: one document per `---`."""
    return "---\n".join(json.dumps(d, indent=1) + "\n" for d in docs)


def north(
    model1: str = "FH16", model2: str = "FH12", extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The production fleet (env: prod) the policies govern."""
    return fleet(
        "north",
        [
            asset("TRK-1", model1, {"class": "heavy"}),
            asset("TRK-2", model2, {"class": "light"}),
            *(extra or []),
        ],
        {"env": "prod"},
    )


def south(model: str = "FH16") -> dict[str, Any]:
    """An ungoverned fleet: it follows the daemon's default (at once, no approval)."""
    return fleet("south", [asset("TRK-3", model)])


NIGHTLY_POLICY = policy("prod-nightly", selector={"matchLabels": {"env": "prod"}}, schedule=NIGHTLY)
MANUAL_POLICY = policy("prod-manual", selector={"matchLabels": {"env": "prod"}}, approval="manual")


# -- the world: repo, state, clock, reconciler, control ------------------------------------------


class Clock:
    """The daemon's clock: `now` is what it says; `tick` advances it on every call."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start
        self.tick = dt.timedelta(0)
        self.calls = 0

    def __call__(self) -> dt.datetime:
        self.calls += 1
        moment = self.now
        self.now = self.now + self.tick
        return moment

    def set(self, moment: dt.datetime) -> None:
        self.now = moment


@dataclass
class World:
    root: Path
    repo: GitRepo
    state: Path
    clock: Clock
    log: OperationLog = field(init=False)
    queue: Coalescer = field(init=False)
    control: Control = field(init=False)
    reconciler: Reconciler = field(init=False)
    health: Health = field(init=False)
    status: StatusWriter = field(init=False)
    default_timeout: float = 600.0
    reports: list[RunReport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.restart()

    def restart(self, log_limit: int = 1000) -> None:
        """A new daemon process over the same state directory (as `DaemonRunner` builds it)."""
        self.log = OperationLog(self.state, limit=log_limit)
        self.log.fail_unfinished(iso(self.clock.now), "the daemon stopped while it ran")
        self.queue = Coalescer()
        self.control = Control(
            self.log,
            self.queue,
            self.state,
            self.default_timeout,
            clock=self.clock,
            rejections=RejectionFile(self.state),
        )
        settings = RunSettings(
            SourceOptions(str(self.repo.root), "HEAD", "manifests", False),
            self.state,
            operation_timeout=self.default_timeout,
        )
        self.reconciler = Reconciler(settings, self.log, self.control)
        self.health = Health(ready_max_age=3600.0)
        self.status = StatusWriter(
            self.state,
            {"url": str(self.repo.root), "ref": "HEAD", "path": "manifests", "mode": "git"},
        )

    # -- git ---------------------------------------------------------------------------------

    def commit(self, *docs: Mapping[str, Any], message: str = "change") -> str:
        return self.repo.commit(message, {"manifests/all.yaml": yaml_docs(*docs)})

    # -- runs --------------------------------------------------------------------------------

    def run(self, op: Operation | None = None, trigger: str = "poll") -> RunReport:
        """One run as the daemon's `_reconcile` does it: run, record health, write status."""
        op = op or Operation.new(trigger, self.control.now_iso())
        report = self.reconciler.run(op)
        self.health.record(report)
        try:  # as the runner does: a damaged log must not stop the status files
            self.health.set_operations(dict(Counter(o.state.name for o in self.log.all())))
        except FleetwardError:
            pass
        self.status.write(report, self.health, {"pid": 0, "interval": 60})
        self.reports.append(report)
        return report

    def run_queued(self) -> RunReport:
        """Take what the worker would take from the queue, admit it, run it."""
        taken = self.queue.take(0)
        assert taken is not None, "nothing was queued"
        admitted = self.control.admit(taken)
        assert admitted is not None, f"operation {taken.operation_id} was not admitted"
        return self.run(admitted)

    # -- reading the state directory ---------------------------------------------------------

    def store_bytes(self) -> bytes:
        return (self.state / "state.json").read_bytes()

    def objects(self) -> dict[str, Any]:
        return {str(k): o for k, o in TinyDBStore(self.state).read().objects.items()}

    def serial(self) -> int:
        return int(TinyDBStore(self.state).read().meta.serial)

    def model(self, address: str) -> str:
        return str(self.objects()[address].spec["attributes"]["model"])

    def summary(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.state / "status" / "summary.json").read_bytes())
        return value

    def plan_json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.state / "status" / "plan.json").read_bytes())
        return value

    def object_file(self, address: str) -> dict[str, Any] | None:
        kind, ident = address.split("/", 1)
        path = self.state / "status" / "objects" / kind / f"{ident}.json"
        if not path.exists():
            return None
        value: dict[str, Any] = json.loads(path.read_bytes())
        return value

    def pending(self) -> dict[str, Path]:
        root = self.state / "status" / "pending"
        return {p.name: p for p in root.iterdir()} if root.is_dir() else {}

    def op(self, operation_id: str) -> Operation:
        found = self.log.get(operation_id)
        assert found is not None, operation_id
        return found

    def scheduled(self, policy_name: str | None = None) -> list[Operation]:
        return [
            o
            for o in self.log.all()
            if o.state is S.SCHEDULED and (policy_name is None or o.policy == policy_name)
        ]

    def only_scheduled(self, policy_name: str) -> Operation:
        ops = self.scheduled(policy_name)
        assert len(ops) == 1, [(o.operation_id, o.state.name, o.message) for o in ops]
        return ops[0]


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reason_of(file: Mapping[str, Any] | None, kind: str = "Ready") -> str:
    assert file is not None, "no object status file"
    return next(str(c["reason"]) for c in file["conditions"] if c["type"] == kind)


def reason_of_message(file: Mapping[str, Any] | None) -> str:
    assert file is not None
    return next(str(c["message"]) for c in file["conditions"] if c["type"] == "Ready")


@pytest.fixture(name="world")
def world_fixture(tmp_path: Path) -> World:
    home = tmp_path / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    env = {k: v for k, v in isolated_env(home).items() if not k.lower().endswith("_proxy")}
    repo = GitRepo(tmp_path / "repo", env)
    return World(tmp_path, repo, tmp_path / "state", Clock(NOON))


@pytest.fixture(name="jump_after_decide")
def jump_after_decide_fixture(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[World, dt.datetime], None]:
    """Make the clock jump right after a run decided what to write (before its write)."""
    original = reconciler_module.decide

    def arm(world: World, to: dt.datetime) -> None:
        def deciding(*args: Any, **kwargs: Any) -> Any:
            decision = original(*args, **kwargs)
            world.clock.set(to)
            return decision

        monkeypatch.setattr(reconciler_module, "decide", deciding)

    return arm


# -- 1. windows ---------------------------------------------------------------------------------


def test_window_closed_schedules_the_governed_part_and_applies_it_when_it_opens(
    world: World,
) -> None:
    revision = world.commit(north(), south(), NIGHTLY_POLICY)
    report = world.run()

    # The ungoverned part (south's truck, the policy itself) is applied in the same run.
    assert report.operation.state is S.SUCCESS, report.operation.message
    objects = world.objects()
    assert set(objects) == {"Asset/TRK-3", "SyncPolicy/prod-nightly"}
    assert world.serial() == 1
    # The governed part waits as its own SCHEDULED (100) operation.
    held = world.only_scheduled("prod-nightly")
    assert int(held.state) == 100
    assert held.waiting_for == ("window",)
    assert held.window == {"opens_at": iso(WINDOW_OPENS), "closes_at": iso(WINDOW_CLOSES)}
    assert held.revision == revision
    assert held.plan_summary is not None and held.plan_summary["create"] == 2

    summary = world.summary()
    assert summary["lastOperation"]["state"] == "SUCCESS"
    assert summary["inSync"] is False
    assert summary["held"] == [
        {
            "policy": "prod-nightly",
            "waitingFor": ["window"],
            "changes": 2,
            "operationId": held.operation_id,
            "window": {"open": False, "opensAt": iso(WINDOW_OPENS), "closesAt": iso(WINDOW_CLOSES)},
        }
    ]
    assert summary["policies"]["prod-nightly"]["window"]["opensAt"] == iso(WINDOW_OPENS)
    assert summary["policies"]["prod-nightly"]["window"]["open"] is False
    assert summary["suspended"] is None
    # The plan names the policy; each held object says why it waits; the plan is pending.
    changes = {c["address"]: c for c in world.plan_json()["changes"]}
    assert changes["Asset/TRK-1"]["policy"] == "prod-nightly"
    assert "policy" not in changes["Asset/TRK-3"]
    assert reason_of(world.object_file("Asset/TRK-1")) == "WaitingForWindow"
    assert held.operation_id in reason_of_message(world.object_file("Asset/TRK-1"))
    assert world.object_file("Asset/TRK-3") is None
    assert set(world.pending()) == {f"{held.operation_id}.json", f"{held.operation_id}.txt"}
    pending = json.loads(world.pending()[f"{held.operation_id}.json"].read_bytes())
    assert sorted(c["address"] for c in pending["changes"]) == ["Asset/TRK-1", "Asset/TRK-2"]

    # The daemon wakes up when the window opens, not before.
    assert world.control.next_wake() == WINDOW_OPENS
    world.control.wake()
    assert world.queue.queued is None
    # Another poll before the window writes nothing and keeps the same operation.
    before = world.store_bytes()
    world.clock.set(NOON + dt.timedelta(hours=3))
    assert world.run().operation.state is S.SUCCESS
    assert world.store_bytes() == before
    assert world.only_scheduled("prod-nightly").operation_id == held.operation_id

    # The window opens: the wake-up asks for a run, and the run applies the part.
    world.clock.set(IN_WINDOW)
    world.control.wake()
    assert world.queue.queued is not None and "window" in world.queue.queued.trigger
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    objects = world.objects()
    assert set(objects) == {"Asset/TRK-1", "Asset/TRK-2", "Asset/TRK-3", "SyncPolicy/prod-nightly"}
    assert objects["Asset/TRK-1"].spec["attributes"] == {"model": "FH16"}
    assert objects["Asset/TRK-2"].spec["attributes"] == {"model": "FH12"}
    assert objects["Asset/TRK-1"].applied_revision == revision
    assert world.serial() == 2
    done = world.op(held.operation_id)
    assert done.state is S.SUCCESS
    assert done.serial == 2
    assert report.operation.operation_id in done.message
    assert not world.scheduled()
    summary = world.summary()
    assert summary["held"] == []
    assert summary["inSync"] is True
    assert summary["applied"]["serial"] == 2
    assert world.pending() == {}
    assert world.object_file("Asset/TRK-1") is None
    assert world.control.next_wake() is None


def test_a_run_that_would_overrun_the_window_writes_nothing_and_waits_for_the_next(
    world: World, jump_after_decide: Callable[[World, dt.datetime], None]
) -> None:
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.run()
    held = world.only_scheduled("prod-nightly")

    # The clock passes the window's end during the run, after it decided to write
    # (within the operation's deadline: this is an overrun, not a timeout).
    world.clock.set(WINDOW_CLOSES - dt.timedelta(minutes=5))
    world.control.wake()
    before = world.store_bytes()
    jump_after_decide(world, WINDOW_CLOSES + dt.timedelta(minutes=1))
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert "prod-nightly" in report.operation.message
    assert world.store_bytes() == before
    assert "Asset/TRK-1" not in world.objects()
    still = world.only_scheduled("prod-nightly")
    assert still.operation_id == held.operation_id
    assert still.waiting_for == ("window",)
    next_opens = WINDOW_OPENS + dt.timedelta(days=1)
    assert still.window is not None and still.window["opens_at"] == iso(next_opens)
    assert world.summary()["held"][0]["window"]["opensAt"] == iso(next_opens)
    assert reason_of(world.object_file("Asset/TRK-1")) == "WaitingForWindow"
    assert world.control.next_wake() == next_opens

    # The next window overruns too, with an ungoverned change due: only that part is written.
    world.commit(north(), south(model="FH18"), NIGHTLY_POLICY, message="TRK-3 is an FH18")
    world.clock.set(WINDOW_CLOSES + dt.timedelta(days=1) - dt.timedelta(minutes=5))
    world.control.wake()
    jump_after_decide(world, WINDOW_CLOSES + dt.timedelta(days=1, minutes=1))
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-3") == "FH18"
    assert "Asset/TRK-1" not in world.objects()
    assert world.only_scheduled("prod-nightly").operation_id == held.operation_id


def test_an_expected_write_longer_than_the_rest_of_the_window_is_held(world: World) -> None:
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.run()
    held = world.only_scheduled("prod-nightly")
    before = world.store_bytes()

    # 03:59: the window is open, but the last write took two minutes.
    world.clock.set(WINDOW_CLOSES - dt.timedelta(minutes=1))
    world.control.write_seconds = 120.0
    world.control.wake()
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.store_bytes() == before
    assert world.only_scheduled("prod-nightly").operation_id == held.operation_id

    # The next window, with a quick write: applied, the same operation ends SUCCESS.
    world.control.write_seconds = 0.0
    world.clock.set(IN_WINDOW + dt.timedelta(days=1))
    world.control.wake()
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert "Asset/TRK-1" in world.objects()
    assert world.op(held.operation_id).state is S.SUCCESS
    assert world.op(held.operation_id).serial == world.serial()


# -- 3. manual approval -----------------------------------------------------------------------


def test_manual_approval_applies_the_approved_plan(world: World) -> None:
    world.commit(north(), south(), MANUAL_POLICY)
    world.run()
    held = world.only_scheduled("prod-manual")
    assert held.waiting_for == ("approval",)
    assert held.approval == {"required": True, "approved_by": None, "approved_at": None}
    assert reason_of(world.object_file("Asset/TRK-2")) == "WaitingForApproval"
    assert world.summary()["held"][0]["waitingFor"] == ["approval"]
    assert f"{held.operation_id}.txt" in world.pending()
    assert "TRK-1" in world.pending()[f"{held.operation_id}.txt"].read_text()
    # Nothing to wake for: approval comes first.
    assert world.control.next_wake() is None

    world.clock.set(NOON + dt.timedelta(minutes=5))
    approved = world.control.approve(held.operation_id, "alice", "looks right")
    assert approved.approval is not None
    assert approved.approval["approved_by"] == "alice"
    assert approved.approval["approved_at"] == iso(NOON + dt.timedelta(minutes=5))
    assert approved.approval["comment"] == "looks right"
    assert world.queue.queued is not None and "approval" in world.queue.queued.trigger

    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert {"Asset/TRK-1", "Asset/TRK-2"} <= set(world.objects())
    done = world.op(held.operation_id)
    assert done.state is S.SUCCESS
    assert done.serial == world.serial() == 2
    assert done.approval is not None and done.approval["approved_by"] == "alice"
    assert world.pending() == {}

    # Approving again: it is no longer waiting.
    with pytest.raises(OperationConflict) as err:
        world.control.approve(held.operation_id, "bob")
    assert refusal_status(err.value) == 409


def test_operations_show_prints_the_plan_a_held_operation_waits_with(world: World) -> None:
    world.commit(north(), south(), MANUAL_POLICY)
    world.run()
    held = world.only_scheduled("prod-manual")
    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "200"})

    shown = runner.invoke(
        cli, ["operations", "show", held.operation_id[:8], "--state-dir", str(world.state)]
    )

    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert "status/pending" not in out  # the plan itself, not where it is kept
    plan = out[out.index("Pending plan") :]
    assert "+ Asset/TRK-1" in plan and "+ Asset/TRK-2" in plan
    assert "Asset/TRK-3" not in plan  # applied already, not held
    assert "Plan: 2 to create, 0 to update, 0 to stop, 0 to delete." in plan
    show_one = ["operations", "show", held.operation_id, "--max-lines", "1"]
    short = runner.invoke(cli, [*show_one, "--state-dir", str(world.state)])
    assert "… and 1 more change(s) not shown (--max-lines 1;" in short.output


def test_a_newer_revision_supersedes_an_unapproved_plan(world: World) -> None:
    world.commit(north(), south(), MANUAL_POLICY)
    world.run()
    old = world.only_scheduled("prod-manual")

    newer = world.commit(north(model1="FH18"), south(), MANUAL_POLICY, message="TRK-1 is an FH18")
    world.run()
    ended = world.op(old.operation_id)
    assert ended.state is S.CANCELLED
    assert newer[:7] in ended.message
    assert "superseded" in ended.message
    new = world.only_scheduled("prod-manual")
    assert new.operation_id != old.operation_id
    assert new.revision == newer
    assert new.plan_digest != old.plan_digest
    assert new.operation_id in ended.message
    pending = world.pending()
    assert set(pending) == {f"{new.operation_id}.json", f"{new.operation_id}.txt"}
    carried = json.loads(pending[f"{new.operation_id}.json"].read_bytes())
    trk1 = next(c for c in carried["changes"] if c["address"] == "Asset/TRK-1")
    assert trk1["after"]["spec"]["attributes"]["model"] == "FH18"

    with pytest.raises(OperationConflict) as err:
        world.control.approve(old.operation_id, "alice")
    assert refusal_status(err.value) == 409
    assert err.value.problem.error and err.value.problem.reason and err.value.problem.resolution

    world.control.approve(new.operation_id, "alice")
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH18"
    assert world.op(new.operation_id).state is S.SUCCESS


def test_approval_binds_to_the_digest_not_to_whatever_is_committed_next(world: World) -> None:
    world.commit(north(), south(), MANUAL_POLICY)
    world.run()
    first = world.only_scheduled("prod-manual")
    world.control.approve(first.operation_id, "alice")
    world.run_queued()
    assert world.model("Asset/TRK-1") == "FH16"

    # A change is planned and approved; before the run, a different change is committed.
    world.commit(north(model1="FH18"), south(), MANUAL_POLICY, message="FH18")
    world.run()
    reviewed = world.only_scheduled("prod-manual")
    world.control.approve(reviewed.operation_id, "alice")
    sneaky = world.commit(north(model1="XXL"), south(), MANUAL_POLICY, message="something else")
    before = world.store_bytes()
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.store_bytes() == before
    assert world.model("Asset/TRK-1") == "FH16"
    assert world.op(reviewed.operation_id).state is S.CANCELLED
    assert sneaky[:7] in world.op(reviewed.operation_id).message
    waiting = world.only_scheduled("prod-manual")
    assert waiting.waiting_for == ("approval",)
    assert waiting.revision == sneaky
    assert reason_of(world.object_file("Asset/TRK-1")) == "WaitingForApproval"


# -- 4. cancel ----------------------------------------------------------------------------------


def test_cancelling_a_scheduled_operation_rejects_its_plan_until_a_new_commit(world: World) -> None:
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.run()
    held = world.only_scheduled("prod-nightly")
    before = world.store_bytes()

    cancelled = world.control.set_state(held.operation_id, S.CANCELLED, "not tonight")
    assert cancelled.state is S.CANCELLED
    assert cancelled.ended_by == "operator"
    assert "not tonight" in cancelled.message
    assert world.op(held.operation_id).state is S.CANCELLED
    assert world.op(held.operation_id).ended_by == "operator"

    # The window opens: nothing of the cancelled plan is applied, nothing new carries it.
    world.clock.set(IN_WINDOW)
    world.control.wake()
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.store_bytes() == before
    assert not world.scheduled()
    assert reason_of(world.object_file("Asset/TRK-1")) == "Rejected"
    assert world.summary()["held"][0]["waitingFor"] == ["rejected"]

    # A commit that changes the part makes a new plan. After a rejection it waits for a
    # person even under approval: auto (the rejected change must not ride along with an
    # unrelated commit); approved, it applies inside the window.
    world.commit(north(model2="FH13"), south(), NIGHTLY_POLICY, message="TRK-2 is an FH13")
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.store_bytes() == before
    renewed = world.only_scheduled("prod-nightly")
    assert renewed.waiting_for == ("approval",)
    assert (world.root / "state" / "rejections.json").exists()
    world.control.approve(renewed.operation_id, "alice")
    rejections = world.root / "state" / "rejections.json"
    assert json.loads(rejections.read_text())  # lifted only once the approved plan applies
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert json.loads(rejections.read_text()) == {}
    assert world.model("Asset/TRK-2") == "FH13"
    assert world.model("Asset/TRK-1") == "FH16"
    assert world.op(renewed.operation_id).state is S.SUCCESS


def test_a_rejection_does_not_lift_with_an_unrelated_commit(world: World) -> None:
    """Cancelling north's change, then a commit that changes only east under the same
    policy: north's rejected change must not be applied with it unapproved."""
    east = fleet("east", [asset("TRK-7")], {"env": "prod"})
    world.commit(north(), south(), east, NIGHTLY_POLICY)
    world.clock.set(IN_WINDOW)
    world.run()  # everything applied inside the window
    world.clock.set(IN_WINDOW + dt.timedelta(hours=12))  # closed until the next night
    world.commit(north(model1="BAD"), south(), east, NIGHTLY_POLICY)
    world.run()
    world.control.set_state(world.only_scheduled("prod-nightly").operation_id, S.CANCELLED, "no")
    east2 = fleet("east", [asset("TRK-7", "FH13")], {"env": "prod"})
    world.commit(north(model1="BAD"), south(), east2, NIGHTLY_POLICY)
    world.run()
    world.clock.set(IN_WINDOW + dt.timedelta(days=1))
    world.control.wake()
    world.run()
    assert world.model("Asset/TRK-1") == "FH16"  # not BAD: nobody approved it
    assert world.model("Asset/TRK-7") == "FH16"
    assert world.only_scheduled("prod-nightly").waiting_for == ("approval",)


# -- 5. illegal transitions ----------------------------------------------------------------------


def test_illegal_transitions_are_409_and_unknown_ids_404(world: World) -> None:
    world.commit(north(), south(), NIGHTLY_POLICY)
    finished = world.run().operation
    assert finished.state is S.SUCCESS
    held = world.only_scheduled("prod-nightly")

    for state in (S.CANCELLED, S.FAILURE, S.TIMEOUT, S.SCHEDULED):
        with pytest.raises(OperationConflict) as err:
            world.control.set_state(finished.operation_id, state, "too late")
        assert refusal_status(err.value) == 409, state
        assert err.value.problem.parameters["state"] == "SUCCESS"
    with pytest.raises(OperationConflict) as err:
        world.control.set_state(held.operation_id, S.SCHEDULED, "again")
    assert refusal_status(err.value) == 409
    assert world.op(held.operation_id).state is S.SCHEDULED  # unchanged
    with pytest.raises(OperationConflict) as err:
        world.control.approve(finished.operation_id, "alice")
    assert refusal_status(err.value) == 409
    with pytest.raises(OperationConflict) as err:
        world.control.approve(held.operation_id, "alice")  # waits for a window, not approval
    assert refusal_status(err.value) == 409

    calls: list[Callable[[], object]] = [
        lambda: world.control.set_state("no-such-id", S.CANCELLED, ""),
        lambda: world.control.approve("no-such-id", "alice"),
    ]
    for call in calls:
        with pytest.raises(OperationNotFound) as err:
            call()
        assert refusal_status(err.value) == 404
        assert err.value.problem.error and err.value.problem.reason and err.value.problem.resolution

    # Once cancelled, it is final: a second cancel is a conflict too.
    world.control.set_state(held.operation_id, S.FAILURE, "bad plan")
    assert world.op(held.operation_id).state is S.FAILURE
    with pytest.raises(OperationConflict) as err:
        world.control.set_state(held.operation_id, S.CANCELLED, "")
    assert refusal_status(err.value) == 409


def test_a_queued_operation_can_be_cancelled_or_held_for_approval(world: World) -> None:
    world.commit(north(), south())
    queued = world.control.create(ConvergeRequest(query={"names": ["TRK-1"]}))
    assert queued.state is S.CREATED
    held = world.control.set_state(queued.operation_id, S.SCHEDULED, "review first")
    assert held.state is S.SCHEDULED and held.waiting_for == ("approval",)
    assert world.queue.take(0) is None  # taken out of the queue
    world.control.approve(held.operation_id, "alice")
    report = world.run_queued()
    assert report.operation.operation_id == held.operation_id
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert set(world.objects()) == {"Asset/TRK-1"}

    other = world.control.create(ConvergeRequest(dry_run=True))
    world.control.set_state(other.operation_id, S.CANCELLED, "")
    assert world.queue.take(0) is None
    assert world.op(other.operation_id).state is S.CANCELLED


# -- 6. timeouts ----------------------------------------------------------------------------------


def test_an_operation_past_its_deadline_times_out_without_writing(
    world: World, jump_after_decide: Callable[[World, dt.datetime], None]
) -> None:
    world.commit(north(), south())
    world.run()
    world.commit(north(model1="FH18"), south(model="FH18"))
    before = world.store_bytes()

    # The default deadline (600 s) passes during the run, after the plan, before the write.
    jump_after_decide(world, NOON + dt.timedelta(hours=1))
    report = world.run()
    assert report.operation.state is S.TIMEOUT
    assert int(report.operation.state) == 120
    assert report.operation.deadline == iso(NOON + dt.timedelta(seconds=600))
    assert world.store_bytes() == before
    assert world.op(report.operation.operation_id).state is S.TIMEOUT
    assert world.summary()["lastOperation"]["stateCode"] == 120

    # arguments.timeout overrides the default: two hours are enough for the same jump.
    start = world.clock.now
    jump_after_decide(world, start + dt.timedelta(hours=1))
    world.control.create(ConvergeRequest(timeout=7200))
    report = world.run_queued()
    assert report.operation.arguments["timeout"] == 7200
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert report.operation.deadline == iso(start + dt.timedelta(seconds=7200))
    assert world.model("Asset/TRK-1") == "FH18"

    # ... and a shorter one than the default times out sooner.
    world.commit(north(model1="FH20"), south())
    before = world.store_bytes()
    start = world.clock.now
    jump_after_decide(world, start + dt.timedelta(seconds=30))
    world.control.create(ConvergeRequest(timeout=10))
    report = world.run_queued()
    assert report.operation.state is S.TIMEOUT, report.operation.message
    assert world.store_bytes() == before


def test_a_ticking_clock_times_out_at_the_first_checkpoint(world: World) -> None:
    world.commit(north(), south())
    world.clock.tick = dt.timedelta(minutes=20)  # every reading of the clock is 20 minutes later
    report = world.run()
    assert report.operation.state is S.TIMEOUT, report.operation.message
    assert not (world.state / "state.json").exists()


# -- 7. device queries ----------------------------------------------------------------------------


def test_a_device_query_converges_only_the_selected_assets(world: World) -> None:
    world.commit(north(), south())
    world.run()
    revision = world.commit(north(model1="FH18", model2="FH13"), south(model="FH18"))

    op = world.control.create(ConvergeRequest(query={"matchLabels": {"class": "heavy"}}))
    assert op.operation_device_query == {"matchLabels": {"class": "heavy"}}
    report = world.run_queued()
    assert report.operation.operation_id == op.operation_id
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH18"
    assert world.model("Asset/TRK-2") == "FH12"
    assert world.model("Asset/TRK-3") == "FH16"
    assert "2 change(s) outside" in report.operation.message
    # The other drift stays pending: the status files say so, and the summary is not in sync.
    assert reason_of(world.object_file("Asset/TRK-2")) == "NotInScope"
    assert reason_of(world.object_file("Asset/TRK-3")) == "NotInScope"
    assert world.object_file("Asset/TRK-1") is None
    summary = world.summary()
    assert summary["lastOperation"]["id"] == op.operation_id
    assert summary["inSync"] is False, "changes outside the query are still pending"

    # The next plan still holds them.
    report = world.run(Operation.new("poll", world.control.now_iso()))
    planned = {c.address for c in report.plan.changes} if report.plan else set()
    assert planned == {"Asset/TRK-2", "Asset/TRK-3"}
    assert world.model("Asset/TRK-2") == "FH13"
    assert world.summary()["inSync"] is True
    assert world.summary()["applied"]["revision"] == revision


def test_a_device_query_by_attribute_and_kind(world: World) -> None:
    world.commit(north(), south())
    world.run()
    world.commit(north(model1="FH18", model2="FH13"), south(model="FH18"))
    # Attributes are matched as the new spec says them.
    world.control.create(
        ConvergeRequest(query={"kinds": ["Asset"], "attributes": {"model": ["FH18"]}})
    )
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH18"
    assert world.model("Asset/TRK-3") == "FH18"
    assert world.model("Asset/TRK-2") == "FH12"
    assert reason_of(world.object_file("Asset/TRK-2")) == "NotInScope"


# -- 8. suspend -----------------------------------------------------------------------------------


def test_a_suspended_daemon_plans_but_writes_nothing_until_resumed(world: World) -> None:
    world.commit(north(), south())
    world.run()
    write_suspension(world.state, Suspension("alice", iso(NOON), "freeze"))
    before = world.store_bytes()

    first = world.commit(north(model1="FH18"), south())
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert "suspended" in report.operation.message
    assert world.store_bytes() == before
    assert world.plan_json()["revision"] == first
    summary = world.summary()
    assert summary["suspended"] == {"by": "alice", "at": iso(NOON), "reason": "freeze"}
    assert summary["inSync"] is False
    assert reason_of(world.object_file("Asset/TRK-1")) == "Suspended"

    # Plans keep following the source.
    second = world.commit(north(model1="FH18", model2="FH13"), south())
    world.run()
    assert world.store_bytes() == before
    assert world.plan_json()["revision"] == second
    assert {c["address"] for c in world.plan_json()["changes"]} == {"Asset/TRK-1", "Asset/TRK-2"}
    metrics = Metrics(world.health).exposition().decode()
    assert sample(metrics, "fleetward_suspended") == 1

    for request in (ConvergeRequest(), ConvergeRequest(query={"names": ["TRK-1"]})):
        with pytest.raises(OperationConflict) as err:
            world.control.create(request)
        assert refusal_status(err.value) == 409
        assert "alice" in err.value.problem.reason
    assert world.queue.queued is None

    assert clear_suspension(world.state) is not None
    world.control.create(ConvergeRequest())
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH18"
    assert world.model("Asset/TRK-2") == "FH13"
    assert world.summary()["suspended"] is None
    assert sample(Metrics(world.health).exposition().decode(), "fleetward_suspended") == 0


def test_a_suspended_policy_holds_only_its_part(world: World) -> None:
    frozen = policy("prod-freeze", selector={"matchLabels": {"env": "prod"}}, suspend=True)
    world.commit(north(), south(), frozen)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert set(world.objects()) == {"Asset/TRK-3", "SyncPolicy/prod-freeze"}
    assert reason_of(world.object_file("Asset/TRK-1")) == "Suspended"
    assert world.summary()["held"][0]["waitingFor"] == ["suspended"]
    assert world.summary()["suspended"] is None
    assert not world.scheduled()
    metrics = Metrics(world.health).exposition().decode()
    assert sample(metrics, "fleetward_held_changes", policy="prod-freeze") == 2

    # Unfreezing (a policy change applies at once) lets the part through.
    thawed = policy("prod-freeze", selector={"matchLabels": {"env": "prod"}}, suspend=False)
    world.commit(north(), south(model="FH18"), thawed)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert {"Asset/TRK-1", "Asset/TRK-2"} <= set(world.objects())
    assert world.model("Asset/TRK-3") == "FH18"


# -- 9. strictness and maxStopFraction ------------------------------------------------------------


def test_the_strictest_policy_governs_an_overlap_and_the_plan_names_it(world: World) -> None:
    loose = policy("a-loose", selector={"kinds": ["Fleet"]}, maxStopFraction=1.0)
    windowed = policy("b-window", selector={"names": ["nor*"]}, schedule=NIGHTLY)
    manual = policy("c-manual", selector={"matchLabels": {"env": "prod"}}, approval="manual")
    world.commit(north(), south(), loose, windowed, manual)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    changes = {c["address"]: c for c in world.plan_json()["changes"]}
    assert changes["Asset/TRK-1"]["policy"] == "c-manual"  # manual beats a window
    assert changes["Asset/TRK-3"]["policy"] == "a-loose"  # only the loose one selects south
    assert "policy" not in changes["SyncPolicy/c-manual"]  # policies are never governed
    assert set(world.plan_json()["policies"]) == {"a-loose", "c-manual"}
    held = world.only_scheduled("c-manual")
    assert set(held.waiting_for) == {"approval"}
    assert "Asset/TRK-3" in world.objects()
    assert not world.scheduled("b-window")

    # Pure: the rank order suspend > manual > window > lower maxStopFraction > name.
    def spec(**kw: Any) -> SyncPolicySpec:
        return SyncPolicySpec.model_validate({"selector": {}, **kw})

    policies = [
        Policy("z-suspend", spec(suspend=True)),
        Policy("y-manual", spec(approval="manual")),
        Policy("x-window", spec(schedule=NIGHTLY)),
        Policy("w-tight", spec(maxStopFraction=0.05)),
        Policy("v-plain", spec()),
        Policy("u-plain", spec()),
    ]
    for i in range(len(policies)):
        rest = policies[i:]
        governance = Governance(rest, [])
        expected = rest[0].name if i < 4 else "u-plain"
        chosen = governance.of_owner("Fleet/north")
        assert chosen is not None and chosen.name == expected
    assert Governance(policies, []).of_owner("SyncPolicy/z-suspend") is None


def test_a_policy_max_stop_fraction_blocks_a_mass_stop_unless_allowed(world: World) -> None:
    extra = [asset("TRK-4"), asset("TRK-5")]
    # minStopCount 1: the fraction judges these few stops (the default floor is 10).
    capped = policy(
        "prod-cap",
        selector={"matchLabels": {"env": "prod"}},
        maxStopFraction=0.5,
        minStopCount=1,
    )
    world.commit(north(extra=extra), south(), capped)
    assert world.run().operation.state is S.SUCCESS
    assert world.serial() == 1

    # 1 of 4 governed assets (25 %): above the default 20 %, within the policy's 50 %.
    world.commit(north(extra=extra[:1]), south(), capped)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.objects()["Asset/TRK-5"].state.value.upper() == "STOPPED"

    # 3 of 3 active governed assets: the policy's guard blocks its part only. The
    # guard names the policy, none of its stops is written, the ungoverned change is.
    world.commit(fleet("north", [], {"env": "prod"}), south("FH13"), capped)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert "policy prod-cap: blocked" in report.operation.message
    assert world.model("Asset/TRK-3") == "FH13"
    assert {k for k, o in world.objects().items() if o.state.value.upper() == "STOPPED"} == {
        "Asset/TRK-5"
    }
    guards = world.plan_json()["guards"]
    blocked = [g for g in guards if g["verdict"].upper() == "BLOCKED"]
    assert blocked and {g.get("policy") for g in blocked} == {"prod-cap"}
    assert [h["waitingFor"] for h in world.summary()["held"]] == [["blocked"]]
    held_file = world.object_file("Asset/TRK-1")
    assert held_file is not None
    assert {c["type"]: c["reason"] for c in held_file["conditions"]}["Ready"] == "Blocked"
    assert not world.scheduled("prod-cap")  # nothing an approval could release

    # arguments.allowMassStop overrides it.
    op = world.control.create(ConvergeRequest(allow_mass_stop=True))
    assert op.arguments == {"allowMassStop": True}
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    states = {
        k: o.state.value.upper() for k, o in world.objects().items() if k.startswith("Asset/TRK-")
    }
    assert states == {
        "Asset/TRK-1": "STOPPED",
        "Asset/TRK-2": "STOPPED",
        "Asset/TRK-4": "STOPPED",
        "Asset/TRK-5": "STOPPED",
        "Asset/TRK-3": "ACTIVE",
    }


# -- 10. restarts ---------------------------------------------------------------------------------


def test_scheduled_operations_survive_a_restart_and_log_eviction(world: World) -> None:
    world.commit(north(), south(), MANUAL_POLICY)
    world.run()
    held = world.only_scheduled("prod-manual")
    # A run in flight when the process died: recorded, not final.
    crashed = Operation.new("poll", world.control.now_iso()).move(
        S.RESOLVING, world.control.now_iso()
    )
    world.log.record(crashed)

    world.restart(log_limit=3)
    assert world.op(crashed.operation_id).state is S.FAILURE
    assert world.op(held.operation_id).state is S.SCHEDULED
    assert world.op(held.operation_id).plan_digest == held.plan_digest

    # Many runs later (the log keeps 3), the held operation is still there.
    for _ in range(5):
        assert world.run().operation.state is S.SUCCESS
    assert len(world.log.all()) <= 4
    assert world.only_scheduled("prod-manual").operation_id == held.operation_id

    world.restart()
    world.control.approve(held.operation_id, "alice")
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert {"Asset/TRK-1", "Asset/TRK-2"} <= set(world.objects())
    assert world.op(held.operation_id).state is S.SUCCESS


# -- pure: decide, hold_overruns, metrics ---------------------------------------------------------


def test_decide_splits_a_plan_into_parts(world: World) -> None:
    world.commit(north(), south(), NIGHTLY_POLICY)
    # A dry run plans everything and writes nothing.
    world.control.create(ConvergeRequest(dry_run=True))
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS
    assert not (world.state / "state.json").exists() or world.serial() == 0
    made = report.plan
    assert made is not None
    policies = report.policies
    assert set(policies) == {"prod-nightly"}

    closed = decide(made, policies, NOON)
    assert {c.address for c in closed.due} == {"Asset/TRK-3", "SyncPolicy/prod-nightly"}
    assert [(p.policy, p.waiting_for) for p in closed.held] == [("prod-nightly", ("window",))]
    assert closed.held_count() == 2

    opened = decide(made, policies, IN_WINDOW)
    assert len(opened.due) == len(made.changes)
    assert not opened.held

    suspended = decide(made, policies, IN_WINDOW, suspended=True)
    assert not suspended.due
    assert all("suspended" in p.waiting_for for p in suspended.parts)

    part = next(p for p in opened.parts if p.policy == "prod-nightly")
    rejected = decide(made, policies, IN_WINDOW, rejected={"prod-nightly": part.digest})
    assert {c.address for c in rejected.due} == {"Asset/TRK-3", "SyncPolicy/prod-nightly"}
    assert rejected.held[0].waiting_for == ("rejected",)

    query = parse_device_query({"names": ["TRK-1", "TRK-3"]})
    scoped = decide(made, policies, IN_WINDOW, query=query)
    assert {c.address for c in scoped.due} == {"Asset/TRK-1", "Asset/TRK-3"}
    assert scoped.out_of_scope == 2

    kept, overrun = hold_overruns(opened, policies, IN_WINDOW + dt.timedelta(minutes=5))
    assert overrun == [] and kept == opened
    held, overrun = hold_overruns(opened, policies, WINDOW_CLOSES)
    assert overrun == ["prod-nightly"]
    assert {c.address for c in held.due} == {"Asset/TRK-3", "SyncPolicy/prod-nightly"}


def test_window_open_metric_per_policy(world: World) -> None:
    # The metric is computed at scrape time: one window always open, one (nearly) never.
    always = policy(
        "always-open",
        selector={"names": ["north"]},
        schedule={"type": "WINDOW", "cron": "* * * * *", "duration": "1h", "timezone": "UTC"},
    )
    yearly = policy(
        "new-year",
        selector={"names": ["south"]},
        schedule={"type": "WINDOW", "cron": "0 0 1 1 *", "duration": "1s", "timezone": "UTC"},
    )
    immediate = policy("plain", selector={"names": ["nobody"]})
    world.commit(north(), south(), always, yearly, immediate)
    world.clock.set(dt.datetime.now(UTC))
    world.run()
    metrics = Metrics(world.health).exposition().decode()
    assert sample(metrics, "fleetward_window_open", policy="always-open") == 1
    assert sample(metrics, "fleetward_window_open", policy="new-year") == 0
    assert 'fleetward_window_open{policy="plain"}' not in metrics  # only WINDOW policies
    assert sample(metrics, "fleetward_held_changes", policy="new-year") == 1
    assert sample(metrics, "fleetward_operations", state="SCHEDULED") == 1
    assert sample(metrics, "fleetward_suspended") == 0
    summary = world.summary()
    assert summary["policies"]["always-open"]["window"]["open"] is True
    assert summary["policies"]["new-year"]["window"]["open"] is False


# -- more edges -------------------------------------------------------------------------------------


def test_a_rejected_plan_is_offered_again_once_a_later_commit_brings_it_back(world: World) -> None:
    """Cancel rejects one plan; after the part changed (reverted), committing it again is a
    new decision and must apply in the window."""
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.clock.set(IN_WINDOW)
    world.run()
    assert world.model("Asset/TRK-2") == "FH12"
    world.clock.set(NOON + dt.timedelta(days=1))  # the next window is closed

    world.commit(north(model2="FH13"), south(), NIGHTLY_POLICY, message="FH13")
    world.run()
    held = world.only_scheduled("prod-nightly")
    world.control.set_state(held.operation_id, S.CANCELLED, "not this one")

    # Reverted: nothing for the policy to do.
    world.commit(north(), south(), NIGHTLY_POLICY, message="revert")
    report = world.run()
    assert report.plan is not None and not report.plan.changes
    # Weeks later, the same change is wanted again, on purpose.
    again = world.commit(north(model2="FH13"), south(), NIGHTLY_POLICY, message="FH13 again")
    world.run()
    world.clock.set(IN_WINDOW + dt.timedelta(days=1))
    world.control.wake()
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-2") == "FH13", (
        f"revision {again[:7]} re-introduced the change after it had gone from the plan, yet "
        f"it is still held as {world.summary()['held']}"
    )


def test_an_operator_window_operation_runs_in_its_window_and_expires_after_it(world: World) -> None:
    world.commit(north(), south())
    start, end = NOON + dt.timedelta(hours=1), NOON + dt.timedelta(hours=2)
    op = world.control.create(
        ConvergeRequest(schedule_type="WINDOW", window_start=iso(start), window_end=iso(end))
    )
    assert op.state is S.SCHEDULED and op.waiting_for == ("window",)
    assert world.queue.take(0) is None
    assert world.control.next_wake() == start

    world.clock.set(start + dt.timedelta(minutes=1))
    world.control.wake()
    report = world.run_queued()
    assert report.operation.operation_id == op.operation_id
    assert report.operation.state is S.SUCCESS, report.operation.message
    # Its deadline: the default timeout, but never past the window's end.
    assert report.operation.deadline == iso(start + dt.timedelta(minutes=1, seconds=600))
    assert "Asset/TRK-1" in world.objects()

    late = world.control.create(
        ConvergeRequest(
            schedule_type="WINDOW",
            window_start=iso(start + dt.timedelta(days=1)),
            window_end=iso(end + dt.timedelta(days=1)),
        )
    )
    world.clock.set(end + dt.timedelta(days=2))
    assert world.control.next_wake() == world.clock.now
    world.control.wake()
    expired = world.op(late.operation_id)
    assert expired.state is S.TIMEOUT, expired.message


def test_cancelling_a_running_operation_stops_it_before_its_write(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.commit(north(), south())
    original = engine_module.refuse_blocked
    answers: list[Any] = []
    threads: list[threading.Thread] = []

    def planned(made: Any) -> None:
        running = world.control.running
        assert running is not None

        def cancel() -> None:
            try:
                answers.append(
                    world.control.set_state(running.operation_id, S.CANCELLED, "stop it")
                )
            except RequestRefused as exc:
                answers.append(exc)

        thread = threading.Thread(target=cancel)
        thread.start()
        # Wait (without sleeping) for the request to be registered.
        stopping = world.control.admission.stop_requested
        while not stopping(running.operation_id) and thread.is_alive():
            thread.join(0.01)
        threads.append(thread)
        original(made)

    monkeypatch.setattr(engine_module, "refuse_blocked", planned)
    report = world.run()
    threads[0].join(10)
    assert report.operation.state is S.CANCELLED, report.operation.message
    assert report.operation.ended_by == "operator"
    assert not (world.state / "state.json").exists()
    assert len(answers) == 1 and isinstance(answers[0], Operation)
    assert answers[0].state is S.CANCELLED


def test_a_cancel_during_the_write_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.commit(north(), south())
    original = engine_module.apply_plan
    refused: list[RequestRefused] = []

    def writing(*args: Any, **kwargs: Any) -> Any:
        running = world.control.running
        assert running is not None
        with pytest.raises(OperationConflict) as err:
            world.control.set_state(running.operation_id, S.CANCELLED, "too late")
        refused.append(err.value)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_module, "apply_plan", writing)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert refused and refusal_status(refused[0]) == 409
    assert "Asset/TRK-1" in world.objects()


def test_a_query_run_leaves_an_approved_part_approved(world: World) -> None:
    """An approved part partly inside a convergence's query: the rest keeps its approval."""
    world.commit(north(), south(), MANUAL_POLICY)
    world.run()
    world.control.approve(world.only_scheduled("prod-manual").operation_id, "alice")
    world.run_queued()
    world.commit(north(model1="FH18", model2="FH13"), south(), MANUAL_POLICY)
    world.run()
    held = world.only_scheduled("prod-manual")
    world.control.approve(held.operation_id, "alice")
    world.queue.take(0)  # the approval's run is not taken: an operator's query runs first
    world.control.create(ConvergeRequest(query={"names": ["TRK-1"]}))
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH18"
    assert world.model("Asset/TRK-2") == "FH12"
    carried = world.op(held.operation_id)
    # The approved TRK-2 change has not been applied and has not changed: the next run
    # applies it without asking again, and nothing claims a newer revision superseded it.
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-2") == "FH13", (
        f"the approved operation ended {carried.state.name}: {carried.message!r}; "
        f"now held: {world.summary()['held']}"
    )
    assert not (carried.state is S.CANCELLED and "superseded" in carried.message), carried.message


def test_a_cancelled_plan_stays_rejected_after_its_operation_leaves_the_log(world: World) -> None:
    """The log keeps the newest N operations; a rejection must not end with its record."""
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.run()
    held = world.only_scheduled("prod-nightly")
    world.control.set_state(held.operation_id, S.CANCELLED, "not this plan")
    before = world.store_bytes()

    world.restart(log_limit=3)
    for hour in range(1, 6):  # the day's polls, before the window
        world.clock.set(NOON + dt.timedelta(hours=hour))
        assert world.run().operation.state is S.SUCCESS
    world.clock.set(IN_WINDOW)
    world.control.wake()
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.store_bytes() == before, (
        f"the cancelled plan was applied once operation {held.operation_id} left the log "
        f"(kept: {len(world.log.all())})"
    )


def test_approval_before_the_window_waits_for_the_window(world: World) -> None:
    both = policy(
        "prod-both", selector={"matchLabels": {"env": "prod"}}, schedule=NIGHTLY, approval="manual"
    )
    world.commit(north(), south(), both)
    world.run()
    held = world.only_scheduled("prod-both")
    assert set(held.waiting_for) == {"window", "approval"}
    assert world.control.next_wake() is None  # approval first

    approved = world.control.approve(held.operation_id, "alice")
    assert approved.waiting_for == ("window",)
    assert world.queue.queued is None  # nothing to run before the window
    assert world.control.next_wake() == WINDOW_OPENS
    world.run()
    assert "Asset/TRK-1" not in world.objects()
    assert world.only_scheduled("prod-both").operation_id == held.operation_id

    world.clock.set(IN_WINDOW)
    world.control.wake()
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert {"Asset/TRK-1", "Asset/TRK-2"} <= set(world.objects())
    done = world.op(held.operation_id)
    assert done.state is S.SUCCESS and done.approval is not None
    assert done.approval["approved_by"] == "alice"


def test_a_damaged_operation_log_does_not_lift_a_rejection(world: World) -> None:
    """An unreadable log loses approvals (parts stay held); it must not lose rejections."""
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.run()
    held = world.only_scheduled("prod-nightly")
    world.control.set_state(held.operation_id, S.CANCELLED, "not this plan")
    before = world.store_bytes()

    (world.state / "operations.json").write_text("{not json")
    world.clock.set(IN_WINDOW)
    report = world.run()
    assert world.store_bytes() == before, (
        f"with the log unreadable, the cancelled plan was applied ({report.operation.message})"
    )


def test_removing_a_document_stays_governed_by_its_own_policy(world: World) -> None:
    """A fleet gone from Git has no labels to match; its stops must stay with the policy that
    governed it, not go to an unrelated (stricter) label-selecting policy."""
    prod = policy(
        "prod-nightly",
        selector={"matchLabels": {"env": "prod"}},
        schedule=NIGHTLY,
        maxStopFraction=1.0,
    )
    freeze = policy("staging-freeze", selector={"matchLabels": {"env": "staging"}}, suspend=True)
    staging = fleet("staging", [asset("STG-1")], {"env": "staging"})
    world.clock.set(IN_WINDOW)
    world.commit(north(), south(), staging, prod, freeze)
    world.run()
    assert {"Asset/TRK-1", "Asset/TRK-2"} <= set(world.objects())

    world.commit(south(), staging, prod, freeze, message="north retired")
    report = world.run()
    changes = {c["address"]: c for c in world.plan_json()["changes"]}
    assert changes["Asset/TRK-1"]["action"] == "stop"
    assert changes["Asset/TRK-1"].get("policy") == "prod-nightly", (
        f"the stop of a prod asset is governed by {changes['Asset/TRK-1'].get('policy')}; "
        f"run: {report.operation.state.name} {report.operation.message}"
    )
    assert world.objects()["Asset/TRK-1"].state.value.upper() == "STOPPED"


# -- review findings: races, restarts, damaged files ------------------------------------------------


def test_a_cancel_between_take_and_start_is_not_overwritten_by_the_run(world: World) -> None:
    """The worker has taken the operation but not started it; a PUT lands in between.
    The PUT's answer (CANCELLED) must be the truth: the run must not start."""
    world.commit(north(), south())
    world.run()
    world.commit(north(model1="FH99"), south())
    before = world.store_bytes()
    op = world.control.create(ConvergeRequest(query={"kinds": ["Asset"]}))
    taken = world.queue.take(0)
    assert taken is not None and taken.operation_id == op.operation_id
    cancelled = world.control.set_state(op.operation_id, S.CANCELLED, "not now")
    assert cancelled.state is S.CANCELLED
    assert world.control.admit(taken) is None  # the worker drops it
    assert world.op(op.operation_id).state is S.CANCELLED
    assert world.store_bytes() == before


def test_a_hold_between_take_and_start_keeps_it_held(world: World) -> None:
    world.commit(north(), south())
    op = world.control.create(ConvergeRequest(dry_run=True))
    taken = world.queue.take(0)
    assert taken is not None
    world.control.set_state(op.operation_id, S.SCHEDULED, "wait for me")
    assert world.control.admit(taken) is None
    assert world.op(op.operation_id).waiting_for == ("approval",)


def test_an_operator_window_open_at_restart_runs_at_once(world: World) -> None:
    world.commit(north(), south())
    op = world.control.create(
        ConvergeRequest(
            schedule_type="WINDOW",
            window_start=iso(NOON + dt.timedelta(hours=1)),
            window_end=iso(NOON + dt.timedelta(hours=3)),
        )
    )
    world.queue.take(0)  # whatever the wake-up at creation queued dies with the process
    world.clock.set(NOON + dt.timedelta(hours=2))
    world.restart()
    assert world.control.next_wake() == world.clock.now  # due, and queued nowhere
    world.control.wake()
    report = world.run_queued()
    assert report.operation.operation_id == op.operation_id
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.control.next_wake() is None


def test_an_approved_operator_operation_runs_after_a_restart(world: World) -> None:
    world.commit(north(), south())
    op = world.control.create(ConvergeRequest(query={"kinds": ["Asset"]}))
    world.control.set_state(op.operation_id, S.SCHEDULED, "review first")
    world.control.approve(op.operation_id, "alice")
    world.restart()  # killed before it ran: the new queue is empty
    assert world.op(op.operation_id).state is S.SCHEDULED
    assert world.control.next_wake() == world.clock.now
    world.control.wake()
    report = world.run_queued()
    assert report.operation.operation_id == op.operation_id
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert "Asset/TRK-1" in world.objects()


def test_a_damaged_rejections_file_holds_everything_and_is_not_overwritten(world: World) -> None:
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.run()
    held = world.only_scheduled("prod-nightly")
    damaged = world.state / "rejections.json"
    damaged.write_text("{not json")
    with pytest.raises(Unavailable) as err:
        world.control.set_state(held.operation_id, S.CANCELLED, "no")
    assert refusal_status(err.value) == 503
    assert damaged.read_text() == "{not json"
    assert world.op(held.operation_id).state is S.SCHEDULED
    world.clock.set(IN_WINDOW)
    world.run()
    assert "Asset/TRK-1" not in world.objects()  # every policy's part is held
    assert "Asset/TRK-3" in world.objects()  # the ungoverned part is not


def test_a_damaged_operation_log_answers_503_not_a_crash(world: World) -> None:
    world.commit(north(), south())
    world.run()
    (world.state / "operations.json").write_text("{not json")
    for call in (
        lambda: world.control.set_state("0" * 8, S.CANCELLED, ""),
        lambda: world.control.approve("0" * 8, "alice"),
        lambda: world.control.create(ConvergeRequest(dry_run=True)),
    ):
        with pytest.raises(Unavailable) as err:
            call()
        assert refusal_status(err.value) == 503
        assert "operation log" in err.value.problem.error


def test_approving_a_manual_plan_overrides_its_own_mass_stop_guard(world: World) -> None:
    careful = policy(
        "prod-careful",
        selector={"matchLabels": {"env": "prod"}},
        approval="manual",
        maxStopFraction=0.1,
        minStopCount=1,
    )
    world.commit(north(), south(), careful)
    world.run()
    world.control.approve(world.only_scheduled("prod-careful").operation_id, "alice")
    world.run()
    assert world.objects()["Asset/TRK-1"].state.value == "active"

    world.commit(fleet("north", [], {"env": "prod"}), south(), careful)
    world.run()
    held = world.only_scheduled("prod-careful")  # blocked, yet there is something to approve
    assert set(held.waiting_for) == {"approval", "blocked"}
    assert [h["waitingFor"] for h in world.summary()["held"]] == [["approval", "blocked"]]
    while world.queue.take(0) is not None:  # what earlier steps queued
        pass
    approved = world.control.approve(held.operation_id, "alice")
    assert approved.waiting_for == ()
    assert world.queue.find_any()  # the approval asks for a run at once
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert world.objects()["Asset/TRK-1"].state.value == "stopped"
    assert world.op(held.operation_id).state is S.SUCCESS


def test_a_dry_run_marks_changes_as_dry_run_not_out_of_scope(world: World) -> None:
    world.commit(north(), south())
    world.control.create(ConvergeRequest(dry_run=True))
    report = world.run_queued()
    assert report.operation.state is S.SUCCESS
    assert "dry run" in report.operation.message
    assert reason_of(world.object_file("Asset/TRK-1")) == "DryRun"
    assert not world.objects()


def test_a_window_that_overlaps_the_next_is_not_an_overrun(world: World) -> None:
    """`* * * * *` for 1h is always open: a write that crosses a minute boundary stays
    inside a window the whole time and must not be held as an overrun."""
    always = policy(
        "always",
        selector={"matchLabels": {"env": "prod"}},
        schedule={"type": "WINDOW", "cron": "* * * * *", "duration": "1h"},
    )
    world.clock.set(NOON + dt.timedelta(seconds=59))
    world.control.write_seconds = 5.0  # the write will end in the next minute
    world.commit(north(), south(), always)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert "Asset/TRK-1" in world.objects()
    assert not world.scheduled()


# -- second review ---------------------------------------------------------------------------------


def test_a_queued_window_operation_past_its_end_does_not_spin_the_wake_up(world: World) -> None:
    world.commit(north(), south())
    op = world.control.create(
        ConvergeRequest(
            schedule_type="WINDOW",
            window_start=iso(NOON + dt.timedelta(hours=1)),
            window_end=iso(NOON + dt.timedelta(hours=2)),
        )
    )
    world.clock.set(NOON + dt.timedelta(hours=1, minutes=1))
    world.control.wake()
    assert world.queue.find(op.operation_id) is not None  # queued behind a long run
    world.clock.set(NOON + dt.timedelta(hours=3))  # ... that outlasts its window
    world.control.wake()
    assert world.control.next_wake() != world.clock.now  # no wake-up loop
    taken = world.queue.take(0)
    assert taken is not None and world.control.admit(taken) is None
    assert world.op(op.operation_id).state is S.TIMEOUT


def test_approving_a_later_plan_does_not_release_the_rejected_one(world: World) -> None:
    """Reject BAD; approve FH17 (never applied); BAD is committed again: it must not be
    applied when the window opens — Alice approved FH17, not BAD."""
    world.commit(north(), south(), NIGHTLY_POLICY)
    world.clock.set(IN_WINDOW)
    world.run()
    world.clock.set(NOON + dt.timedelta(days=1))  # closed
    world.commit(north(model1="BAD"), south(), NIGHTLY_POLICY)
    world.run()
    world.control.set_state(world.only_scheduled("prod-nightly").operation_id, S.CANCELLED, "no")
    world.commit(north(model1="FH17"), south(), NIGHTLY_POLICY)
    world.run()
    world.control.approve(world.only_scheduled("prod-nightly").operation_id, "alice")
    world.commit(north(model1="BAD"), south(), NIGHTLY_POLICY)
    world.run()
    world.clock.set(IN_WINDOW + dt.timedelta(days=1))
    world.control.wake()
    world.run()
    assert world.model("Asset/TRK-1") == "FH16"
    assert [h["waitingFor"] for h in world.summary()["held"]] == [["rejected"]]


def test_a_suspend_written_while_a_run_plans_stops_its_write(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.commit(north(), south())
    planning = engine_module.make_plan

    def plan_then_suspend(*args: Any, **kwargs: Any) -> Any:
        made = planning(*args, **kwargs)
        write_suspension(world.state, Suspension("bob", iso(NOON), "stop everything"))
        return made

    monkeypatch.setattr(engine_module, "make_plan", plan_then_suspend)
    report = world.run()
    assert report.operation.state is S.SUCCESS, report.operation.message
    assert "suspended" in report.operation.message
    assert not (world.state / "state.json").exists() or not world.objects()


def test_holding_the_daemons_own_run_is_refused(world: World) -> None:
    op = world.control.create(ConvergeRequest())  # plain: joins the coalesced run
    with pytest.raises(OperationConflict) as err:
        world.control.set_state(op.operation_id, S.SCHEDULED, "")
    assert refusal_status(err.value) == 409
    assert "fleetward suspend" in err.value.problem.reason


# -- stopping the daemon --------------------------------------------------------------------------


def test_a_run_that_reaches_no_checkpoint_is_ended_by_the_stopping_daemon(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that outlasts the stop deadline (one huge file): the stopping thread, holding
    the write gate, ends the run CANCELLED where it is; what the run records later is
    dropped, and it never writes."""
    world.commit(north())
    entered, release = threading.Event(), threading.Event()
    original = pipeline_module.load

    def stuck(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "load", stuck)
    cause: list[str] = []
    op = Operation.new("poll", world.control.now_iso())
    reports: list[RunReport] = []
    worker = threading.Thread(
        target=lambda: reports.append(world.reconciler.run(op, lambda: next(iter(cause), None)))
    )
    worker.start()
    assert entered.wait(30)
    cause.append("SIGTERM")
    with world.reconciler.write_gate:
        ended = world.reconciler.abandon("SIGTERM")
        release.set()
        worker.join(30)
    assert not worker.is_alive()

    message = "daemon stopped (SIGTERM) before the write; the run was abandoned "
    assert ended is not None and ended.state is S.CANCELLED
    assert ended.message == message + "while loading the manifests"
    # The run itself stopped at the next checkpoint ("after loading …"): not recorded.
    recorded = world.op(op.operation_id)
    assert (recorded.state, recorded.message) == (S.CANCELLED, ended.message)
    assert reports[0].operation.message == ended.message
    assert not (world.state / "state.json").exists()
    assert world.reconciler.abandon("SIGTERM") is None  # nothing runs any more


# -- status files on a full disk ------------------------------------------------------------------


def test_a_full_disk_does_not_keep_the_failure_out_of_the_summary(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan.txt and plan.json fail with ENOSPC; summary.json still tells the run and names
    both files, and `fleetward status` can show it."""
    world.commit(north())
    real_write = status_module.write_atomic

    def disk_full(path: Path, data: Any, **kwargs: Any) -> Any:
        if path.name.startswith("plan."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(path, data, **kwargs)

    real_stream = status_module.write_atomic_stream

    def disk_full_streaming(path: Path, write: Any, **kwargs: Any) -> Any:
        if path.name.startswith("plan."):  # plan.json is written as a stream
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_stream(path, write, **kwargs)

    monkeypatch.setattr(status_module, "write_atomic", disk_full)
    monkeypatch.setattr(status_module, "write_atomic_stream", disk_full_streaming)
    report = world.run()
    assert report.operation.state is S.SUCCESS
    summary = world.summary()
    assert summary["lastOperation"]["id"] == report.operation.operation_id
    status = world.state / "status"
    assert summary["statusFileErrors"] == [
        f"{status / name}: No space left on device (errno 28)" for name in ("plan.txt", "plan.json")
    ]
    assert not (status / "plan.txt").exists() and not (status / "plan.json").exists()

    monkeypatch.setattr(status_module, "write_atomic", real_write)
    monkeypatch.setattr(status_module, "write_atomic_stream", real_stream)
    world.run()
    assert world.summary()["statusFileErrors"] == []  # the next run that fits says so
