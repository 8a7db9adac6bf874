"""Retry semantics: a failure only a change can fix is recorded once; a transient one backs off.

The daemon's worker step (`Worker`: admit, run, outcome) over the in-process
world of test_control (a real repository, state directory, log and queue, the
controllable clock). Triggers are queued and taken as the daemon's worker takes
them; retries the worker asks for are collected instead of scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from test_control import World, north, south, world_fixture  # noqa: F401 (the fixture)

from fleetward.daemon.control import ConvergeRequest
from fleetward.daemon.reconciler import AfterFetch, RunReport
from fleetward.daemon.triggers import Backoff
from fleetward.daemon.worker import Worker
from fleetward.errors import GuardBlocked, SourceError
from fleetward.operations import Operation, OperationState
from fleetward.store.base import ChangeSet

S = OperationState
BROKEN = "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: north\nspec: {assets: []}\n"


@dataclass
class Daemon:
    """The worker as the daemon wires it, retries collected."""

    world: World
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=60.0))
    retries: list[float] = field(default_factory=list)
    worker: Worker = field(init=False)

    def __post_init__(self) -> None:
        self.worker = Worker(
            self.world.control.admit,
            self._run,
            self.backoff,
            self.retries.append,
            store_serial=lambda: self.world.reconciler.store.meta().serial,
        )

    def _run(self, op: Operation, unchanged: AfterFetch | None) -> RunReport:
        return self.world.reconciler.run(op, unchanged=unchanged)

    def trigger(self, reason: str, record: bool = False) -> RunReport | None:
        """A trigger queues a run; the worker takes and handles it. `record`: the
        operation is recorded when queued, as the daemon does for webhooks."""
        queued = self.world.queue.request(reason)
        assert queued is not None
        if record:
            self.world.log.record(queued)
        taken = self.world.queue.take(0)
        assert taken is not None
        return self.worker.handle(taken)

    def failures(self) -> list[Operation]:
        return [o for o in self.world.log.all() if o.state is S.FAILURE]


@pytest.fixture(name="daemon")
def daemon_fixture(world: World) -> Daemon:
    return Daemon(world)


def test_a_bad_commit_fails_once_and_waits_for_a_new_revision(daemon: Daemon) -> None:
    world = daemon.world
    world.commit(north(), south())
    first = daemon.trigger("startup")
    assert first is not None and first.operation.state is S.SUCCESS
    store = world.store_bytes()

    bad = world.repo.commit("broken YAML", {"manifests/all.yaml": BROKEN})
    reports = [daemon.trigger(r) for r in ("watch", "poll", "watch", "poll", "window", "poll")]
    reports.append(daemon.trigger("webhook", record=True))
    (failed,) = daemon.failures()
    assert failed.revision == bad and failed.error_count >= 1
    assert daemon.retries == []  # nothing retried with backoff
    assert world.store_bytes() == store
    # The runs after the failure read the source, found the same revision and stopped
    # there: no record of them, but for the webhook's (recorded when it was queued).
    assert all(r is not None and r.unchanged for r in reports[1:])
    assert [o.state for o in world.log.all()] == [S.SUCCESS, S.FAILURE, S.CANCELLED]
    hook = world.log.all()[-1]
    assert "webhook" in hook.trigger
    assert f"unchanged since operation {failed.operation_id} failed" in hook.message

    # An operator's request runs in full: the revision is still bad, so it fails again.
    world.control.create(ConvergeRequest())
    asked = world.queue.take(0)
    assert asked is not None
    report = daemon.worker.handle(asked)
    assert report is not None and report.operation.state is S.FAILURE
    assert len(daemon.failures()) == 2 and daemon.retries == []

    # A new commit that fixes it is applied by the next trigger.
    fixed = world.commit(north(model1="FH18"), south())
    report = daemon.trigger("poll")
    assert report is not None and report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH18"
    assert world.objects()["Asset/TRK-1"].applied_revision == fixed
    assert len(daemon.failures()) == 2 and daemon.retries == []


def test_a_fetch_failure_still_backs_off_and_retries(daemon: Daemon) -> None:
    world = daemon.world
    world.commit(north(), south())
    daemon.trigger("startup")

    away = world.repo.root.rename(world.root / "repo-away")
    for reason in ("poll", "retry", "retry", "retry"):
        report = daemon.trigger(reason)
        assert report is not None and report.fetch_failed, report
        assert isinstance(report.failure, SourceError)
    assert len(daemon.failures()) == 4
    assert len(daemon.retries) == 4
    assert 0.9 <= daemon.retries[0] <= 1.1  # then 2 s, 4 s, 8 s (each ±10 %)
    for earlier, later in zip(daemon.retries, daemon.retries[1:], strict=False):
        assert 1.6 <= later / earlier <= 2.5

    away.rename(world.repo.root)
    world.commit(north(model1="FH18"), south())
    report = daemon.trigger("retry")
    assert report is not None and report.operation.state is S.SUCCESS, report.operation.message
    assert world.model("Asset/TRK-1") == "FH18"
    assert daemon.backoff.failures == 0  # the next failure starts again at 1 s


def test_a_fetch_failure_while_waiting_keeps_waiting_for_a_new_revision(daemon: Daemon) -> None:
    world = daemon.world
    world.commit(north(), south())
    daemon.trigger("startup")
    world.repo.commit("broken YAML", {"manifests/all.yaml": BROKEN})
    daemon.trigger("watch")
    away = world.repo.root.rename(world.root / "repo-away")
    daemon.trigger("poll")  # the source is gone: a temporary failure, retried
    assert len(daemon.retries) == 1
    away.rename(world.repo.root)
    report = daemon.trigger("retry")  # back, at the revision that failed for good
    assert report is not None and report.unchanged
    assert [o.state for o in daemon.failures()] == [S.FAILURE, S.FAILURE]
    assert len(daemon.retries) == 1


def test_a_guard_verdict_waits_for_a_new_revision_or_a_write_to_the_store(
    daemon: Daemon,
) -> None:
    """A guard reads the store as well as the revision: parked on both, so a write by
    someone else (an operator's `fleetward apply`) lets the next trigger plan again."""
    world = daemon.world
    world.commit(north(), south())
    assert (first := daemon.trigger("startup")) is not None
    assert first.operation.state is S.SUCCESS

    world.repo.commit("everything removed", {"manifests/all.yaml": "# nothing declared\n"})
    blocked = daemon.trigger("poll")
    assert blocked is not None and isinstance(blocked.failure, GuardBlocked)
    assert daemon.trigger("poll").unchanged  # type: ignore[union-attr]
    assert len(daemon.failures()) == 1

    # Someone writes the store (here: an empty change set, which bumps the serial).
    store = world.reconciler.store
    meta = store.meta()
    store.apply(ChangeSet(meta.lineage, meta.serial, "elsewhere", (), (), {"by": "operator"}))
    again = daemon.trigger("poll")
    assert again is not None and not again.unchanged
    assert isinstance(again.failure, GuardBlocked)  # planned again, against the new store
    assert len(daemon.failures()) == 2 and daemon.retries == []
