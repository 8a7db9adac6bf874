"""Replicas on one PostgreSQL store: one leads, a lost lead writes nothing more, and a
standby takes the lead when the leader is killed. Real PostgreSQL, real processes
where the kill must be real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable

import pytest
from postgres_support import Server
from test_store_contract import _apply, _asset

from fleetward.errors import StoreUnreachable
from fleetward.operations import Operation, OperationState
from fleetward.store.postgres import PostgresStore

WAIT = 60.0
TRIALS = 20


def _wait_for(condition: Callable[[], bool], what: str) -> int:
    """Poll `condition` every 50 ms; how many polls it took."""
    event = threading.Event()
    for polls in range(int(WAIT / 0.05)):
        if condition():
            return polls
        event.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_replica_leads_and_a_terminated_lead_writes_nothing_more(
    postgres: Server, pg_url: str
) -> None:
    leader, standby = PostgresStore(pg_url), PostgresStore(pg_url)
    assert leader.leadership.try_lead()
    assert not standby.leadership.try_lead(), "one leader at a time"
    with leader.lock(5):
        _apply(leader, [_asset("A")])
    leader.operations.record(Operation.new("api", "2026-01-01T00:00:00Z"))
    before = standby.dump()
    pid = leader.leadership.pid
    with postgres.admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # Fenced: neither the apply, the lock, the operation log nor the outbox goes through.
    with pytest.raises(StoreUnreachable):
        _apply(leader, [_asset("B")])
    with pytest.raises(StoreUnreachable):
        leader.operations.record(Operation.new("api", "2026-01-01T00:00:01Z"))
    with pytest.raises(StoreUnreachable), leader.lock(1):
        pass
    assert not leader.leadership.still_leading() and leader.leadership.lost
    assert standby.dump() == before, "the deposed leader wrote nothing"
    _wait_for(standby.leadership.try_lead, "the standby to take the lead")
    with standby.lock(5):
        _apply(standby, [_asset("B")])
    assert standby.meta().serial == 2
    # The deposed replica steps down and stands by: it may not lead while another does.
    leader.leadership.step_down()
    assert not leader.leadership.try_lead()
    leader.operations.record(Operation.new("api", "2026-01-01T00:00:02Z"))  # as a client
    assert len(standby.operations.all()) == 2


_LEADER = textwrap.dedent(
    """
    import sys, time
    from fleetward.store.postgres import PostgresStore
    from test_store_contract import _apply, _asset
    store = PostgresStore(sys.argv[1])
    assert store.leadership.try_lead()
    print("leading", flush=True)
    n = int(sys.argv[2])
    while True:
        with store.lock(5):
            _apply(store, [_asset(f"X{n}")], revision=f"r{n}")
        n += 1
    """
)


def test_a_killed_leader_is_replaced_and_no_apply_lands_twice(
    pg_url: str, tmp_path: object
) -> None:
    """The leader applies in a loop and is SIGKILLed at a random instant, TRIALS times:
    each time a standby takes the lead, the store is at a whole apply (serial and
    history agree, one object per apply), and the new leader carries on from it."""
    tests_dir = os.path.dirname(__file__)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]),
    }
    rng = __import__("random").Random(14)
    standby = PostgresStore(pg_url)
    for trial in range(TRIALS):
        start = standby.meta().serial
        leader = subprocess.Popen(
            [sys.executable, "-c", _LEADER, pg_url, str(start)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert leader.stdout is not None
        assert leader.stdout.readline().strip() == b"leading"
        threading.Event().wait(rng.uniform(0.0, 0.3))  # some applies, then the kill
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        _wait_for(standby.leadership.try_lead, f"trial {trial}: the standby to lead")
        snapshot = standby.read()
        history = standby.history()
        serial = snapshot.meta.serial
        assert len(snapshot.objects) == serial, "one object per whole apply, none half-done"
        assert [e["serial"] for e in history][-1:] == ([serial] if serial else [])
        revisions = [e.get("revision") for e in history]
        assert len(revisions) == len(set(revisions)), "no apply landed twice"
        standby.leadership.step_down()  # the next trial's leader takes it
    assert standby.meta().serial >= TRIALS // 2, "the leaders applied between the kills"


def test_a_standby_takes_over_the_runs_a_killed_leader_left(pg_url: str) -> None:
    from fleetward.daemon.replicas import Replica
    from fleetward.daemon.triggers import Coalescer

    old = PostgresStore(pg_url)
    assert old.leadership.try_lead()
    half_done = Operation.new("poll", "2026-01-01T00:00:00Z").move(
        OperationState.RESOLVING, "2026-01-01T00:00:01Z"
    )
    asked = Operation.new("api", "2026-01-01T00:00:02Z")  # a request a standby recorded
    old.operations.record(half_done, asked)
    new = PostgresStore(pg_url)
    queue = Coalescer()
    roles: list[str] = []
    replica = Replica(
        new.leadership,
        new.operations,
        queue,
        idle=lambda: True,
        on_role=lambda role, _problem: roles.append(role),
        name="replica b",
    )
    replica.tick()
    assert not replica.leading and roles[-1] == "standby"
    old.leadership.step_down()  # as a killed process's session ends
    replica.tick()
    assert replica.leading and roles[-1] == "leader"
    ended = new.operations.get(half_done.operation_id)
    assert ended is not None and ended.state is OperationState.FAILURE
    assert "took the lead" in ended.message
    assert queue.take(0) == asked, "the standby's request is carried out by the leader"
    assert queue.take(0) is not None and queue.take(0) is None  # and one reconcile
    replica.tick()
    assert queue.take(0) is None, "an adopted operation is not queued twice"


def test_a_leader_whose_write_met_the_fence_starts_no_run_before_it_steps_down(
    postgres: Server, pg_url: str
) -> None:
    from fleetward.daemon.replicas import Replica
    from fleetward.daemon.triggers import Coalescer

    store = PostgresStore(pg_url)
    replica = Replica(
        store.leadership,
        store.operations,
        Coalescer(),
        idle=lambda: True,
        on_role=lambda _role, _problem: None,
        name="replica a",
    )
    replica.tick()
    assert replica.leading and replica.may_run
    with postgres.admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store.leadership.pid,))
    with pytest.raises(StoreUnreachable):
        store.operations.record(Operation.new("api", "2026-01-01T00:00:00Z"))
    assert replica.leading and not replica.may_run, "the worker waits for the next tick"
    replica.tick()  # steps down, and takes the lead again on a new session: no one else holds it
    assert replica.leading and replica.may_run and replica.terms == 2
