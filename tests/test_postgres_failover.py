"""Replicas as an operator runs them: three `fleetward daemon --store URL` processes on one
database (each with a state directory of its own for its status files). The leader is
SIGKILLed, or its leadership session terminated, while it writes a large commit: a
survivor takes the lead, ends the half-done run FAILURE with the reason, and applies
the commit exactly once. Real PostgreSQL, real processes, real HTTP.
"""

from __future__ import annotations

from typing import Any

from daemon_support import (  # noqa: F401  (pytest fixtures)
    DaemonProcess,
    Daemons,
    GitRepo,
    Workspace,
    assert_error_body,
    daemons_fixture,
    sample,
    wait_until,
    ws_fixture,
)
from postgres_support import Server

from fleetward.operations import APPLY_STATES, OperationState
from fleetward.store.pg_leader import LEADER_LOCK
from fleetward.store.pg_schema import LOCK_CLASS
from fleetward.store.postgres import PostgresStore

TOKEN = "replica-token"
REPLICAS = 3
WAIT = 60.0  # generous: a loaded 2-core box
# Large enough that writing it takes a moment to catch (a few hundred milliseconds),
# small enough to keep the test quick.
BIG_FLEET = 4000


def _big_fleet(repo: GitRepo, assets: int) -> str:
    """Commit a Fleet of `assets` new assets; the commit."""
    lines = ["apiVersion: fleetward/v1", "kind: Fleet", "metadata:", "  name: big", "spec:"]
    lines.append("  assets:")
    for n in range(assets):
        lines += [
            f"    - externalAssetId: BIG-{n}",
            f"      name: Big {n}",
            "      type: truck",
            "      attributes: {make: Volvo, model: FH16}",
        ]
    return repo.commit("a big fleet", {"manifests/big.yaml": "\n".join(lines) + "\n"})


def _start(
    ws: Workspace, daemons: Daemons, repo: GitRepo, pg_url: str, count: int = REPLICAS
) -> list[DaemonProcess]:
    """`count` daemons on one database, each with its own state directory, started."""
    started = [
        daemons.start(
            repo.root,
            ws.path(f"state-{n}"),
            "--store",
            pg_url,
            api_token=TOKEN,
            wait=False,
        )
        for n in range(count)
    ]
    for daemon in started:
        daemon.wait_started(timeout=WAIT)
    return started


def _role(daemon: DaemonProcess) -> str | None:
    """The role /readyz reports (None once the process is gone)."""
    if daemon.proc.poll() is not None:
        return None
    role: str = daemon.get("/readyz").json()["role"]
    return role


def _the_leader(replicas: list[DaemonProcess]) -> DaemonProcess | None:
    """The one replica /readyz calls leader, once exactly one does (the others standbys)."""
    roles = [_role(d) for d in replicas]
    if roles.count("leader") != 1 or roles.count("standby") != len(replicas) - 1:
        return None
    return replicas[roles.index("leader")]


def _leader_gauges(replicas: list[DaemonProcess]) -> list[float]:
    return [sample(d.metrics(), "fleetward_leader") for d in replicas]


def _writing(store: PostgresStore) -> str | None:
    """The id of the run writing the store now (recorded DISPATCHING, not final)."""
    return next(
        (op.operation_id for op in store.operations.all() if op.state in APPLY_STATES), None
    )


def _request(replica: DaemonProcess) -> str:
    """Ask `replica` (any role) for a run; the operation's id."""
    created = replica.request_run(TOKEN)
    assert created.status == 201, created.text
    operation_id: str = created.json()["content"]["operation_id"]
    return operation_id


def _interrupt(
    ws: Workspace, daemons: Daemons, pg_url: str, interrupt: Any
) -> tuple[list[DaemonProcess], DaemonProcess, str, str, str]:
    """Three replicas reconcile the bundled manifests; a large commit is made (the leader
    watches the repository), and `interrupt(leader)` is called while the leader writes
    it. The replicas, the interrupted leader, the first and the large commit, and the
    interrupted run's id."""
    repo, first = ws.repo()
    store = PostgresStore(pg_url)
    replicas = _start(ws, daemons, repo, pg_url)
    leader = wait_until(lambda: _the_leader(replicas), WAIT, what="one leader, two standbys")
    wait_until(lambda: store.meta().last_applied_revision == first, WAIT, what="the first apply")
    assert sorted(_leader_gauges(replicas)) == [0.0] * (REPLICAS - 1) + [1.0]

    big = _big_fleet(repo, BIG_FLEET)
    operation_id = wait_until(lambda: _writing(store), WAIT, 0.005, "the leader to write")
    interrupt(leader)
    return replicas, leader, first, big, operation_id


def _assert_taken_over(
    store: PostgresStore, survivors: list[DaemonProcess], operation_id: str, big: str
) -> DaemonProcess:
    """A survivor leads, ended the interrupted run FAILURE with the reason, and applied
    `big` exactly once; the new leader."""
    new = wait_until(lambda: _the_leader(survivors), WAIT, what="a survivor to take the lead")
    wait_until(
        lambda: store.meta().last_applied_revision == big, WAIT, what="the large commit applied"
    )
    ended = store.operations.get(operation_id)
    assert ended is not None and ended.state is OperationState.FAILURE, ended
    assert "took the lead" in ended.message and "stopped during this run" in ended.message

    history = store.history()
    assert [e["serial"] for e in history] == list(range(1, len(history) + 1))
    revisions = [e.get("revision") for e in history]
    assert len(revisions) == len(set(revisions)), f"an apply landed twice: {revisions}"
    assert revisions[-1] == big
    snapshot = store.read()
    assert snapshot.meta.serial == history[-1]["serial"]
    big_assets = [k for k in snapshot.objects if str(k).startswith("Asset/BIG-")]
    assert len(big_assets) == BIG_FLEET, "the store holds the last revision, whole"
    succeeded = [
        op
        for op in store.operations.all()
        if op.state is OperationState.SUCCESS and f"applied {big[:12]}" in op.message
    ]
    assert len(succeeded) <= 1, "one run applied the large commit (or the killed one did)"
    return new


def test_a_killed_leader_daemon_is_replaced_and_its_run_ends_failure(
    ws: Workspace, daemons: Daemons, pg_url: str
) -> None:
    store = PostgresStore(pg_url)
    replicas, leader, first, big, operation_id = _interrupt(
        ws, daemons, pg_url, lambda leader: leader.kill()
    )
    survivors = [d for d in replicas if d is not leader]
    new = _assert_taken_over(store, survivors, operation_id, big)
    assert sorted(_leader_gauges(survivors)) == [0.0, 1.0]
    took = new.logged("took the lead")
    assert took and operation_id in took[-1]["endedRuns"]
    assert store.history()[0]["revision"] == first
    # A standby takes an operator's request (a row) and serves the read API; the new
    # leader carries the request out.
    standby = next(d for d in survivors if d is not new)
    asked = standby.wait_operation(_request(standby), timeout=WAIT)
    assert asked["state"] == "SUCCESS", asked
    assert len(store.history()) == 2, "nothing more to apply"


def _leadership_pid(postgres: Server, database: str) -> int:
    """The server pid of the session holding the leadership lock of `database`."""
    with postgres.admin(database) as admin:
        row = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = %s AND granted",
            (LOCK_CLASS, LEADER_LOCK),
        ).fetchone()
    assert row is not None, "no session holds the lead"
    pid = row[0]
    assert isinstance(pid, int)
    return pid


def test_a_leader_whose_session_is_terminated_writes_nothing_more_and_stands_by(
    ws: Workspace, daemons: Daemons, pg_url: str, postgres: Server, pg_database: str
) -> None:
    store = PostgresStore(pg_url)

    def terminate(leader: DaemonProcess) -> None:
        with postgres.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(%s)", (_leadership_pid(postgres, pg_database),)
            )

    replicas, leader, _first, big, operation_id = _interrupt(ws, daemons, pg_url, terminate)
    survivors = [d for d in replicas if d is not leader]
    _assert_taken_over(store, survivors, operation_id, big)
    # The deposed leader is up, stands by, and said why; the failure it met when its
    # write was refused never reached the store (the new leader's record stands).
    leader.wait(lambda: _role(leader) == "standby", WAIT, "the deposed leader to stand by")
    assert sample(leader.metrics(), "fleetward_leader") == 0.0
    leader.wait(
        lambda: leader.logged("lost the lead: the leadership session ended; standing by"),
        WAIT,
        "the deposed leader to log why",
    )
    assert sorted(_leader_gauges(replicas)) == [0.0, 0.0, 1.0]
    # Its run met the fence: it failed locally (its own status files say so), and that
    # record never reached the store, where the new leader's stands (checked above).
    summary = leader.wait_summary(
        lambda s: s["lastOperation"]["id"] == operation_id, WAIT, "the fenced run to end"
    )
    last = summary["lastOperation"]
    assert last["state"] == "FAILURE", last
    assert "Lost the connection" in last["message"] or "lost the lead" in last["message"]


def _status(ws: Workspace, daemon: DaemonProcess, pg_url: str) -> tuple[int, str]:
    assert daemon.state_dir is not None
    done = ws.fleetward("status", "--state-dir", str(daemon.state_dir), "--store", pg_url)
    return done.returncode, done.stdout


def test_replicas_share_the_suspension_and_status_says_each_role(
    ws: Workspace, daemons: Daemons, pg_url: str
) -> None:
    """`fleetward suspend --store` through any replica's state directory holds the
    leader, and the standbys refuse requests meanwhile; `fleetward status` says which
    replica leads."""
    repo, first = ws.repo()
    store = PostgresStore(pg_url)
    replicas = _start(ws, daemons, repo, pg_url, count=2)
    leader = wait_until(lambda: _the_leader(replicas), WAIT, what="one leader, one standby")
    standby = next(d for d in replicas if d is not leader)
    wait_until(lambda: store.meta().last_applied_revision == first, WAIT, what="the first apply")
    leading = leader.wait_summary(lambda s: s["lastOperation"] is not None, WAIT)
    assert leading["replica"]["role"] == "leader"
    code, shown = _status(ws, leader, pg_url)
    assert code == 0 and "role       leader since" in shown, shown
    code, shown = _status(ws, standby, pg_url)
    assert code == 0 and "role       standby since" in shown, shown
    assert "none by this daemon" in shown

    assert standby.state_dir is not None
    suspended = ws.fleetward(
        "suspend", "--state-dir", str(standby.state_dir), "--store", pg_url, "--by", "ops"
    )
    assert suspended.returncode == 0, suspended.stderr
    assert_error_body(standby.request_run(TOKEN), 409)  # it reads the database's switch
    second = repo.set_model("FH17")

    def held() -> bool:
        return any(
            op.revision == second and "suspended by ops" in op.message
            for op in store.operations.all()
        )

    wait_until(held, WAIT, what="the leader to plan the commit and hold it")
    assert store.meta().last_applied_revision == first
    code, shown = _status(ws, leader, pg_url)
    assert "Suspended by ops" in shown

    resumed = ws.fleetward("resume", "--state-dir", str(leader.state_dir), "--store", pg_url)
    assert resumed.returncode == 0, resumed.stderr
    asked = standby.wait_operation(_request(standby), timeout=WAIT)
    assert asked["state"] == "SUCCESS", asked
    assert store.meta().last_applied_revision == second
