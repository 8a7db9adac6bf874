"""The pure parts of the daemon: Operation states, coalescing, backoff, webhook checks, the log.

No process, no socket: each concept is exercised in process, with the
operation log on a real state directory in tmp_path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from fleetward.daemon import triggers
from fleetward.daemon.triggers import Backoff, Coalescer, ref_filter
from fleetward.errors import Problem, StoreError
from fleetward.http import app as app_module
from fleetward.http.app import verify_webhook
from fleetward.operations import (
    FINAL_STATES,
    MAX_ERRORS_KEPT,
    IllegalTransition,
    Operation,
    OperationState,
    can_move,
)
from fleetward.store.operations import OperationLog

S = OperationState
T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:00:01Z"

# -- Operation states ------------------------------------------------------------------------------

# DESIGN §6: the seed's states and their integer codes.
CODES = {
    "CREATED": 10,
    "RESOLVING": 20,
    "RESOLVED": 30,
    "DISPATCHING": 40,
    "DISPATCHED": 50,
    "PROCESSING": 60,
    "COMPLETED": 70,
    "SUCCESS": 80,
    "FAILURE": 90,
    "SCHEDULED": 100,
    "CANCELLED": 110,
    "TIMEOUT": 120,
}
# The forward moves, written out independently of the implementation's table.
FORWARD = {
    (S.CREATED, S.RESOLVING),
    (S.CREATED, S.SCHEDULED),
    (S.SCHEDULED, S.RESOLVING),
    (S.SCHEDULED, S.DISPATCHING),
    (S.RESOLVING, S.RESOLVED),
    (S.RESOLVED, S.DISPATCHING),
    (S.RESOLVED, S.SCHEDULED),
    (S.RESOLVED, S.SUCCESS),  # nothing to write
    (S.DISPATCHING, S.DISPATCHED),
    (S.DISPATCHED, S.PROCESSING),
    (S.PROCESSING, S.COMPLETED),
    (S.COMPLETED, S.SUCCESS),
}
ENDINGS = {S.FAILURE, S.CANCELLED, S.TIMEOUT}


def expected_legal(current: OperationState, wanted: OperationState) -> bool:
    if current in FINAL_STATES:
        return False
    return (current, wanted) in FORWARD or wanted in ENDINGS


def test_states_have_the_seeds_codes() -> None:
    assert {s.name: int(s) for s in OperationState} == CODES
    assert FINAL_STATES == {S.SUCCESS, S.FAILURE, S.CANCELLED, S.TIMEOUT}
    assert all(s.final == (s in FINAL_STATES) for s in OperationState)


@pytest.mark.parametrize("text", ["SUCCESS", "success", "OPERATION_SUCCESS", "80", " 80 ", 80])
def test_a_state_parses_from_its_name_or_code(text: str | int) -> None:
    assert OperationState.parse(text) is S.SUCCESS


@pytest.mark.parametrize("text", ["DONE", "81", "", "-80", "SUCCESSFUL"])
def test_an_unknown_state_does_not_parse(text: str) -> None:
    with pytest.raises((KeyError, ValueError)):
        OperationState.parse(text)


@pytest.mark.parametrize("current", list(OperationState), ids=lambda s: s.name)
@pytest.mark.parametrize("wanted", list(OperationState), ids=lambda s: s.name)
def test_every_transition_is_legal_or_illegal_as_designed(
    current: OperationState, wanted: OperationState
) -> None:
    legal = expected_legal(current, wanted)
    assert can_move(current, wanted) is legal
    op = Operation.new("test", T0)
    # Reach `current` by a legal route first.
    route = {
        S.CREATED: [],
        S.SCHEDULED: [S.SCHEDULED],
        S.RESOLVING: [S.RESOLVING],
        S.RESOLVED: [S.RESOLVING, S.RESOLVED],
        S.DISPATCHING: [S.RESOLVING, S.RESOLVED, S.DISPATCHING],
        S.DISPATCHED: [S.RESOLVING, S.RESOLVED, S.DISPATCHING, S.DISPATCHED],
        S.PROCESSING: [S.RESOLVING, S.RESOLVED, S.DISPATCHING, S.DISPATCHED, S.PROCESSING],
        S.COMPLETED: [
            S.RESOLVING, S.RESOLVED, S.DISPATCHING, S.DISPATCHED, S.PROCESSING, S.COMPLETED
        ],
        S.SUCCESS: [S.RESOLVING, S.RESOLVED, S.SUCCESS],
        S.FAILURE: [S.FAILURE],
        S.CANCELLED: [S.CANCELLED],
        S.TIMEOUT: [S.RESOLVING, S.TIMEOUT],
    }[current]  # fmt: skip
    op = op.through(route, T0)
    assert op.state is current
    if legal:
        moved = op.move(wanted, T1, "why")
        assert moved.state is wanted
        assert moved.transitions[-1].state is wanted and moved.transitions[-1].at == T1
        assert moved.updated_at == T1
    else:
        with pytest.raises(IllegalTransition) as caught:
            op.move(wanted, T1)
        assert current.name in str(caught.value) and wanted.name in str(caught.value)
        assert (caught.value.current, caught.value.wanted) == (current, wanted)
        assert op.state is current  # unchanged: operations are values


def test_a_run_records_every_transition_in_order() -> None:
    op = Operation.new("webhook", T0)
    assert (op.state, op.created_at, op.updated_at) == (S.CREATED, T0, T0)
    assert op.operation_type == "CONVERGE" and op.schedule_type == "IMMEDIATE"
    assert op.finished_at is None and op.started_at == T0
    path = [
        S.RESOLVING, S.RESOLVED, S.DISPATCHING, S.DISPATCHED, S.PROCESSING, S.COMPLETED,
        S.SUCCESS,
    ]  # fmt: skip
    done = op.move(S.RESOLVING, T1, "fetching").through(path[1:], T1)
    assert [t.state for t in done.transitions] == [S.CREATED, *path]
    assert done.message == "fetching"  # a move without a message keeps the last one
    assert done.finished_at == T1 and done.started_at == T1
    assert done.operation_id == op.operation_id
    assert Operation.new("x", T0).operation_id != op.operation_id


def test_an_operation_round_trips_through_the_seeds_json() -> None:
    problems = [Problem(f"Error {n}", "why", "fix", f"f.yaml:{n}:1") for n in range(150)]
    op = (
        Operation.new("watch,api", T0)
        .move(S.RESOLVING, T1)
        .with_errors(problems)
        .move(S.FAILURE, T1, "Error 0 (and 149 more)")
    )
    doc = op.to_dict()
    assert doc["state"] == "FAILURE" and doc["state_code"] == 90
    assert doc["error_count"] == 150 and len(doc["errors"]) == MAX_ERRORS_KEPT
    assert doc["transitions"][-1] == {
        "state": "FAILURE",
        "state_code": 90,
        "at": T1,
        "message": "Error 0 (and 149 more)",
    }
    assert "message" not in doc["transitions"][0]
    again = Operation.from_dict(json.loads(json.dumps(doc)))
    assert again.to_dict() == doc


def test_records_in_the_log_read_back_and_write_byte_for_byte() -> None:
    """The log's JSON is the API's Operation model now; records written before it (a
    plain run, one with every field set, one with keys the model does not name) still
    read, and write the same bytes."""
    lines = (Path(__file__).parent / "operation-records.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        op = Operation.from_dict(json.loads(line))
        assert json.dumps(op.to_dict(), separators=(",", ":"), ensure_ascii=False) == line
    assert Operation.from_dict(json.loads(lines[1])).ended_by == "operator"
    held = Operation.from_dict(json.loads(lines[2]))
    assert held.approval is not None and held.approval["comment"] == "looked at the stops"
    assert held.waiting_for == ("approval", "blocked", "rejected")


# -- Coalescer -------------------------------------------------------------------------------------


def test_requests_while_one_run_is_queued_join_it() -> None:
    seen: list[tuple[str, str]] = []
    queue = Coalescer(on_queued=lambda op, reason: seen.append((op.trigger, reason)))
    first = queue.request("watch")
    assert first is not None
    joined = [queue.request(reason) for reason in ("webhook", "api", "watch", "webhook", "poll")]
    assert {op.operation_id for op in joined if op} == {first.operation_id}
    assert joined[-1] is not None and joined[-1].trigger == "watch,webhook,api,poll"
    assert [reason for _, reason in seen] == ["watch", "webhook", "api", "watch", "webhook", "poll"]
    assert seen[-1][0] == "watch,webhook,api,poll"  # the callback sees the merged trigger

    taken = queue.take(timeout=0)
    assert taken is not None and taken.operation_id == first.operation_id
    assert taken.trigger == "watch,webhook,api,poll"
    assert queue.queued is None and queue.take(timeout=0.01) is None

    after = queue.request("poll")
    assert after is not None and after.operation_id != first.operation_id
    assert after.trigger == "poll"


def test_one_run_in_flight_and_at_most_one_queued() -> None:
    queue = Coalescer()
    in_flight = queue.request("startup")
    assert queue.take(timeout=0) is in_flight  # the worker runs it

    barrier = threading.Barrier(20)
    returned: list[str] = []
    lock = threading.Lock()

    def ask(n: int) -> None:
        barrier.wait()
        op = queue.request(f"r{n % 3}")
        assert op is not None
        with lock:
            returned.append(op.operation_id)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(returned) == 20 and len(set(returned)) == 1  # one queued run for all
    queued = queue.take(timeout=0)
    assert queued is not None and queued.operation_id == returned[0]
    assert sorted(queued.trigger.split(",")) == ["r0", "r1", "r2"]
    assert queue.take(timeout=0) is None


def test_a_waiting_worker_wakes_on_a_request() -> None:
    queue = Coalescer()
    got: list[Operation | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.take(timeout=10)))
    worker.start()
    op = queue.request("watch")
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert got == [op]


def test_close_returns_the_queued_run_and_refuses_more() -> None:
    queue = Coalescer()
    queued = queue.request("webhook")
    queue.request("api")
    never_ran = queue.close()
    assert never_ran is not None and never_ran.operation_id == queued.operation_id
    assert never_ran.trigger == "webhook,api"
    assert queue.request("poll") is None
    assert queue.take(timeout=0) is None
    assert Coalescer().close() is None  # nothing queued


def test_close_wakes_a_waiting_worker() -> None:
    queue = Coalescer()
    got: list[Operation | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.take(timeout=10)))
    worker.start()
    queue.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and got == [None]


# -- Backoff ---------------------------------------------------------------------------------------


@pytest.fixture
def jitter(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Pin the jitter factor (the test sets it); every delay is then exact."""
    factor = [1.0]
    monkeypatch.setattr(triggers.random, "uniform", lambda low, high: factor[0])
    return factor


def test_backoff_doubles_up_to_the_cap_and_resets_on_success(jitter: list[float]) -> None:
    backoff = Backoff(base=1.0, cap=60.0)
    assert [backoff.failed() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    backoff.succeeded()
    assert backoff.failures == 0
    assert backoff.failed() == 1


def test_backoff_jitter_is_within_a_tenth() -> None:
    backoff = Backoff(base=1.0, cap=1000.0)
    for n in range(8):
        delay = backoff.failed()
        assert 0.9 * 2**n <= delay <= 1.1 * 2**n


@pytest.mark.parametrize("factor", [0.9, 1.1])
@pytest.mark.parametrize("cap", [1.0, 4.2, 5.0, 60.0, 7.5])
def test_backoff_never_exceeds_the_cap_even_with_jitter(
    jitter: list[float], factor: float, cap: float
) -> None:
    """DESIGN §7: failures back off exponentially *up to* the poll interval."""
    jitter[0] = factor
    backoff = Backoff(base=1.0, cap=cap)
    delays = [backoff.failed() for _ in range(12)]
    assert all(0 < d <= cap for d in delays), delays
    assert delays[-1] == cap


# -- the webhook signature -------------------------------------------------------------------------

SECRET = "webhook-secret"
BODY = b'{"ref": "refs/heads/main", "after": "abc"}'


def hub(body: bytes = BODY, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-hub-signature-256": "sha256=" + hub()},  # GitHub (and Gitea)
        {"x-hub-signature-256": " sha256=" + hub().upper() + " "},
        {"x-gitea-signature": hub()},  # Gitea's own header
        {"x-gitlab-token": SECRET},  # GitLab
    ],
    ids=["github", "github-uppercase", "gitea", "gitlab"],
)
def test_a_webhook_that_knows_the_secret_passes(headers: dict[str, str]) -> None:
    assert verify_webhook(SECRET, BODY, headers) is None


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "no signature"),
        ({"x-hub-signature-256": "sha256=" + hub(secret="other")}, "does not match"),
        ({"x-hub-signature-256": "sha256=" + hub(body=BODY + b" ")}, "does not match"),
        ({"x-hub-signature-256": "sha256="}, "does not match"),
        ({"x-hub-signature-256": hub()}, "sha256=<hex digest>"),
        ({"x-hub-signature-256": "sha1=" + hub()}, "sha256=<hex digest>"),
        ({"x-gitea-signature": hub(secret="other")}, "X-Gitea-Signature"),
        ({"x-gitlab-token": "other"}, "X-Gitlab-Token"),
        ({"x-gitlab-token": ""}, "X-Gitlab-Token"),
        ({"x-gitlab-token": hub()}, "X-Gitlab-Token"),  # a signature is not the token
        ({"x-hub-signature-256": "sha256=\xe9"}, "does not match"),  # not a crash
        ({"x-gitea-signature": "\xe9" * 64}, "X-Gitea-Signature"),
    ],
    ids=[
        "none",
        "other-secret",
        "other-body",
        "empty",
        "no-prefix",
        "sha1",
        "gitea-wrong",
        "gitlab-wrong",
        "gitlab-empty",
        "gitlab-signature",
        "non-ascii-hub",
        "non-ascii-gitea",
    ],
)
def test_a_webhook_that_does_not_know_the_secret_is_refused(
    headers: dict[str, str], fragment: str
) -> None:
    verdict = verify_webhook(SECRET, BODY, headers)
    assert verdict is not None and fragment in verdict


@pytest.mark.parametrize(
    "headers",
    [
        {"x-hub-signature-256": "sha256=" + hub()},
        {"x-hub-signature-256": "sha256=" + hub(secret="other")},
        {"x-gitea-signature": hub()},
        {"x-gitlab-token": SECRET},
        {"x-gitlab-token": "nope"},
    ],
    ids=["github-good", "github-bad", "gitea", "gitlab-good", "gitlab-bad"],
)
def test_every_webhook_comparison_is_constant_time(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(app_module.hmac, "compare_digest", spy)
    verify_webhook(SECRET, BODY, headers)
    assert len(calls) == 1  # the decision went through compare_digest, and only it


# -- the local repository watch filter ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("/r/.git/refs/heads/main", True),
        ("/r/.git/refs/tags/v1", True),
        ("/r/.git/packed-refs", True),
        ("/r/.git/HEAD", True),
        ("/r/.git/FETCH_HEAD", True),
        ("/r/.git/refs/heads/main.lock", False),
        ("/r/.git/objects/ab/cdef", False),
        ("/r/.git/logs/refs/heads/main", False),
        ("/r/.git/logs/HEAD", False),
        ("/r/.git/index", False),
        ("/r/.git/COMMIT_EDITMSG", False),
        ("/r/.git/info/refs", False),
        ("/elsewhere/refs/heads/main", False),
    ],
)
def test_the_watch_reacts_to_refs_only(path: str, wanted: bool) -> None:
    from watchfiles import Change

    assert ref_filter([Path("/r/.git")])(Change.modified, path) is wanted


@pytest.mark.parametrize("git_dir", ["/srv/logs/r/.git", "/srv/objects/r/.git", "/srv/refs/r/.git"])
def test_the_watch_judges_paths_inside_the_git_dir_only(git_dir: str) -> None:
    """A repository under a directory named logs or objects is still watched; one
    under refs does not run on every index write."""
    from watchfiles import Change

    watch = ref_filter([Path(git_dir)])
    assert watch(Change.modified, f"{git_dir}/refs/heads/main") is True
    assert watch(Change.modified, f"{git_dir}/HEAD") is True
    assert watch(Change.modified, f"{git_dir}/index") is False
    assert watch(Change.modified, f"{git_dir}/logs/HEAD") is False


# -- the operation log -----------------------------------------------------------------------------


def op_at(created: str, state: OperationState = S.SUCCESS, trigger: str = "poll") -> Operation:
    op = Operation.new(trigger, created)
    if state is S.SUCCESS:
        return op.through([S.RESOLVING, S.RESOLVED, S.SUCCESS], created)
    if state is S.CREATED:
        return op
    if state is S.RESOLVING:
        return op.move(S.RESOLVING, created)
    return op.move(state, created)


def test_the_log_orders_and_pages_operations(tmp_path: Path) -> None:
    log = OperationLog(tmp_path)
    same_second = "2026-01-01T00:00:05Z"
    ops = [
        op_at("2026-01-01T00:00:01Z"),
        op_at("2026-01-01T00:00:02Z", S.FAILURE),
        op_at(same_second),
        op_at(same_second, S.CANCELLED),  # recorded after the one before: newer
        op_at("2026-01-01T00:00:09Z"),
    ]
    for op in ops:
        log.record(op)
    every = [op.operation_id for op in ops]

    def query(**kw: Any) -> tuple[list[str], int]:
        found, total = log.query(**kw)
        return [op.operation_id for op in found], total

    assert query() == (every[::-1], 5)  # newest first by default
    assert query(ordering="created_at") == (every, 5)
    assert query(limit=2) == (every[::-1][:2], 5)
    assert query(limit=2, offset=2) == (every[::-1][2:4], 5)
    assert query(limit=2, offset=4) == (every[::-1][4:], 5)
    assert query(offset=5) == ([], 5)
    assert query(limit=0) == ([], 5)
    assert query(state=S.FAILURE) == ([every[1]], 1)
    assert query(state=S.SUCCESS, ordering="created_at") == ([every[0], every[2], every[4]], 3)
    assert query(state=S.TIMEOUT) == ([], 0)

    by_state, _ = query(ordering="state")
    codes = [int(log.get(i).state) for i in by_state]
    assert codes == sorted(codes) == [80, 80, 80, 90, 110]
    by_state_desc, _ = query(ordering="-state")
    assert [int(log.get(i).state) for i in by_state_desc] == [110, 90, 80, 80, 80]
    assert query(ordering="updated_at")[0][0] == every[0]

    with pytest.raises(ValueError, match="ordering"):
        log.query(ordering="operation_id")


def test_recording_an_operation_again_replaces_it_in_place(tmp_path: Path) -> None:
    log = OperationLog(tmp_path)
    running = op_at("2026-01-01T00:00:01Z", S.RESOLVING)
    other = op_at("2026-01-01T00:00:02Z")
    log.record(running)
    log.record(other)
    done = running.through([S.RESOLVED, S.SUCCESS], "2026-01-01T00:00:03Z")
    log.record(done)
    assert [op.operation_id for op in log.all()] == [running.operation_id, other.operation_id]
    assert log.get(running.operation_id) == done
    assert log.get("no-such-id") is None


def test_the_log_keeps_only_the_most_recent_operations(tmp_path: Path) -> None:
    log = OperationLog(tmp_path, limit=3)
    ops = [op_at(f"2026-01-01T00:00:0{n}Z") for n in range(6)]
    for op in ops:
        log.record(op)
    assert [op.operation_id for op in log.all()] == [op.operation_id for op in ops[-3:]]
    assert log.query()[1] == 3
    assert log.get(ops[0].operation_id) is None
    stored = json.loads((tmp_path / "operations.json").read_text())
    assert len(stored["operations"]) == 3

    log.record(*[op_at("2026-01-02T00:00:00Z") for _ in range(5)])  # one batch past the limit
    assert len(log.all()) == 3


def test_a_restart_fails_the_operations_a_dead_process_left_running(tmp_path: Path) -> None:
    log = OperationLog(tmp_path)
    finished = op_at("2026-01-01T00:00:01Z")
    left = op_at("2026-01-01T00:00:02Z", S.RESOLVING)
    queued = op_at("2026-01-01T00:00:03Z", S.CREATED)
    log.record(finished, left, queued)
    ended = log.fail_unfinished(T1, "the daemon stopped")
    assert {op.operation_id for op in ended} == {left.operation_id, queued.operation_id}
    assert log.get(finished.operation_id) == finished
    for op_id in (left.operation_id, queued.operation_id):
        op = log.get(op_id)
        assert op is not None and op.state is S.FAILURE and op.message == "the daemon stopped"
    assert log.fail_unfinished(T1, "again") == []


def test_a_corrupt_log_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "operations.json").write_text(json.dumps({"operations": {"1": {"nope": 1}}}))
    with pytest.raises(StoreError) as caught:
        OperationLog(tmp_path).all()
    assert "operations.json" in caught.value.problems[0].error


def test_an_empty_state_directory_has_an_empty_log(tmp_path: Path) -> None:
    log = OperationLog(tmp_path / "never-written")
    assert log.all() == [] and log.query() == ([], 0)


# -- health --------------------------------------------------------------------------------------


def _report(op: Operation, *, errors: int = 0, fetch_failed: bool = False) -> Any:
    from fleetward.daemon.reconciler import RunReport
    from fleetward.model import Revision

    problems = tuple(Problem("boom", "why", "fix") for _ in range(errors or fetch_failed))
    revision = None if fetch_failed else Revision("a" * 40, "git", "main")
    return RunReport(op, revision, None, None, None, problems, errors, fetch_failed, {}, 0.1)


def test_a_fetch_failure_does_not_hide_the_tracked_revisions_manifest_errors() -> None:
    """A bad commit, then the remote goes away: the revision is still bad, and readiness
    and fleetward_manifest_errors must keep saying so."""
    from fleetward.observe.health import Health
    from fleetward.observe.metrics import Metrics

    health = Health(ready_max_age=300)
    started = Operation.new("poll", "t").move(S.RESOLVING, "t")
    health.record(_report(started.move(S.RESOLVED, "t").move(S.SUCCESS, "t")))
    assert health.readiness()[0] is True
    health.record(_report(started.move(S.FAILURE, "t"), errors=2))
    health.record(_report(started.move(S.FAILURE, "t"), fetch_failed=True))
    ready, body = health.readiness()
    assert not ready and any("2 manifest error" in r for r in body["reasons"])
    scraped = Metrics(health).exposition().decode()
    assert "fleetward_manifest_errors 2.0" in scraped
    assert "fleetward_source_fetch_failures_total 1.0" in scraped


def test_a_run_that_never_ends_makes_the_daemon_unhealthy(tmp_path: Path) -> None:
    """A worker wedged in one run (a hung git on a dead file system) is alive but
    useless: /healthz must fail and the systemd watchdog must stop being fed."""
    import time as _time

    from fleetward.daemon.config import DaemonConfig
    from fleetward.daemon.runner import STUCK_AFTER, Daemon

    daemon = Daemon(DaemonConfig(state_dir=str(tmp_path), git_timeout=60.0))
    assert not daemon._stuck()
    daemon._busy_since = _time.monotonic() - 10
    assert not daemon._stuck()  # a run in progress is fine
    daemon._busy_since = _time.monotonic() - STUCK_AFTER - 1
    assert daemon._stuck()
