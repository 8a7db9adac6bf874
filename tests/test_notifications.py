"""Notifications: events of real daemon runs delivered to real HTTP receivers on 127.0.0.1.

Every receiver is `notify_support.Receiver`, a threaded http.server that records
requests and answers from a script (or hangs). No test asserts a duration:
ordering, counts, ids and a Retry-After's lower bound are what is checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    NORTH,
    DaemonProcess,
    Daemons,
    Workspace,
    daemons_fixture,
    http,
    sample,
    wait_until,
    ws_fixture,
)
from notify_support import Receiver, free_port
from prometheus_client import CollectorRegistry

from fleetward.cli import cli
from fleetward.daemon.config import read_config_file
from fleetward.errors import FleetwardError
from fleetward.model import Revision
from fleetward.notify import TARGET_TYPES, Notifier, TargetSettings
from fleetward.operations import Operation, OperationState
from fleetward.runs import RunReport
from fleetward.store import MemoryStore, TinyDBStore
from fleetward.timestamps import now_iso

HOOK_SECRET = "hook-secret-value"
GH_TOKEN = "gh-token-value"
GL_TOKEN = "gl-token-value"
SLACK_PATH = "/slack/T000/B000/XXXXSECRET"
LOCATION = re.compile(r"^manifests/fleets/north-yard\.yaml:\d+:\d+$")
MANUAL_POLICY = """\
apiVersion: fleetward/v1
kind: SyncPolicy
metadata:
  name: north-by-hand
spec:
  selector: {kinds: [Fleet], names: [north-yard]}
  approval: manual
"""
FAST = {"backoff": "10ms", "maxBackoff": "100ms", "attempts": 1000, "rateLimit": "1000/s"}


def write_config(path: Path, targets: list[dict[str, Any]], **settings: Any) -> Path:
    path.write_text(json.dumps({**settings, "notifications": targets}))  # JSON is YAML
    return path


def hook(receiver: Receiver, secret_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "hook",
        "type": "webhook",
        "url": f"{receiver.url}/hook",
        "secretFile": str(secret_file),
        **FAST,
        **extra,
    }


def types(receiver: Receiver, prefix: str = "/hook") -> list[str]:
    return [e["type"] for e in receiver.events(prefix)]


@pytest.fixture
def receiver() -> Any:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "hook-secret"
    path.write_text(HOOK_SECRET + "\n")
    return path


def start(daemons: Daemons, ws: Workspace, config: Path, **kw: Any) -> DaemonProcess:
    repo_root = kw.pop("repo_root")
    return daemons.start(repo_root, ws.path("state"), "--config", str(config), **kw)


# -- every target type, one event per change of state -----------------------------------------


def test_runs_reach_every_target_type_once_per_change_of_state(
    ws: Workspace, daemons: Daemons, receiver: Receiver, secret_file: Path, tmp_path: Path
) -> None:
    repo, good = ws.repo()
    token_file = tmp_path / "gh-token"
    token_file.write_text(GH_TOKEN)
    config = write_config(
        tmp_path / "fleetward.yaml",
        [
            hook(receiver, secret_file),
            {"name": "chat", "type": "slack", "urlEnv": "SLACK_URL", **FAST},
            {
                "name": "gh",
                "type": "github",
                "baseUrl": f"{receiver.url}/github",
                "repository": "acme/fleet",
                "tokenFile": str(token_file),
                "targetUrl": "https://fleet.example/ui",
                **FAST,
            },
            {
                "name": "gl",
                "type": "gitlab",
                "baseUrl": f"{receiver.url}/gitlab/",
                "project": "acme/fleet",
                "tokenEnv": "GITLAB_TOKEN",
                "context": "fleetward/prod",
                **FAST,
            },
            {
                "name": "gt",
                "type": "gitea",
                "baseUrl": f"{receiver.url}/gitea",
                "repository": "acme/fleet",
                "tokenFile": str(token_file),
                **FAST,
            },
        ],
    )
    env = {"SLACK_URL": receiver.url + SLACK_PATH, "GITLAB_TOKEN": GL_TOKEN}
    token = "api-token-for-tests"
    daemon = start(daemons, ws, config, repo_root=repo.root, env=env, api_token=token)
    daemon.wait_applied(good)
    wait_until(lambda: types(receiver) == ["daemon-started", "applied"], what="first events")

    repo.replace(NORTH, "model: FH16, year: 2022", "model: [FH16, year: 2022")
    bad = repo.commit("broken YAML")
    wait_until(lambda: "failed" in types(receiver), what="the failed event")
    # The same bad revision, run again twice: still one `failed`.
    for _ in range(2):
        op = daemon.request_run(token).json()["content"]["operation_id"]
        daemon.wait_operation(op)
    repo.replace(NORTH, "model: [FH16, year: 2022", "model: FH16, year: 2022")
    fixed = repo.set_model("FH16 Aero", "fix it")
    daemon.wait_applied(fixed)
    wanted = ["daemon-started", "applied", "failed", "recovered", "applied"]
    wait_until(lambda: types(receiver) == wanted, what="recovered and applied")
    # good and fixed: pending then success; bad: failure (it failed before any plan).
    wait_until(
        lambda: all(len(receiver.received(p)) == 5 for p in ("/github", "/gitlab", "/gitea")),
        timeout=60,
        what="five commit statuses per provider",
    )
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    assert types(receiver) == [*wanted, "daemon-stopped"]

    # The generic webhook: signed, versioned, one id per event, sent as idempotency key.
    sent = receiver.received("/hook")
    for request in sent:
        expected = hmac.new(HOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-hub-signature-256"] == f"sha256={expected}"
        body = request.json()
        assert body["version"] == 1
        assert request.headers["idempotency-key"] == body["id"]
        assert request.headers["x-fleetward-event-id"] == body["id"]
        assert request.headers["x-fleetward-event"] == body["type"]
    bodies = [r.json() for r in sent]
    assert len({b["id"] for b in bodies}) == len(bodies)
    started, applied, failed = bodies[0], bodies[1], bodies[2]
    assert started["daemon"]["listen"] == daemon.url  # approve links' default base
    assert applied["revision"]["id"] == good
    assert applied["counts"]["create"] > 0 and "Asset" in applied["kinds"]
    assert failed["revision"]["id"] == bad
    assert failed["errorCount"] >= 1 and failed["manifestErrors"] >= 1
    assert all(LOCATION.match(e["location"]) for e in failed["errors"]), failed["errors"]
    assert bodies[4]["counts"] == {"update": 1}

    # Slack: a short text with the revision, the counts, the first error's location.
    texts = [r.json()["text"] for r in receiver.received(SLACK_PATH)]
    assert len(texts) == 6
    assert good[:7] in texts[1] and "create" in texts[1]
    assert bad[:7] in texts[2] and re.search(r"north-yard\.yaml:\d+:\d+", texts[2])

    # Commit statuses, per provider's documented path, auth header and body: one per
    # change of a revision's status. A planned revision is pending, then success; the
    # bad one, which failed before it had a plan, is failure once (not per retry); the
    # fixed one, which recovers and applies, is success once.
    github = receiver.received("/github")
    shas = (good, good, bad, fixed, fixed)
    assert [r.path for r in github] == [f"/github/repos/acme/fleet/statuses/{sha}" for sha in shas]
    assert all(r.headers["authorization"] == f"Bearer {GH_TOKEN}" for r in github)
    assert github[0].headers["accept"] == "application/vnd.github+json"
    states = [r.json()["state"] for r in github]
    assert states == ["pending", "success", "failure", "pending", "success"]
    pending, first = github[0].json(), github[1].json()
    assert pending["description"].startswith("planning ") and good[:7] in pending["description"]
    assert first["context"] == "fleetward" and first["target_url"] == "https://fleet.example/ui"
    assert good[:7] in first["description"] and len(first["description"]) <= 140
    assert fixed[:7] in github[4].json()["description"]
    gitlab = receiver.received("/gitlab")
    assert gitlab[2].path == f"/gitlab/api/v4/projects/acme%2Ffleet/statuses/{bad}"
    assert all(r.headers["private-token"] == GL_TOKEN for r in gitlab)
    assert [r.json()["state"] for r in gitlab] == [
        "pending",
        "success",
        "failed",
        "pending",
        "success",
    ]
    assert gitlab[0].json()["name"] == "fleetward/prod"
    gitea = receiver.received("/gitea")
    assert [r.path for r in gitea] == [
        f"/gitea/api/v1/repos/acme/fleet/statuses/{sha}" for sha in shas
    ]
    assert all(r.headers["authorization"] == f"token {GH_TOKEN}" for r in gitea)
    assert [r.json()["state"] for r in gitea] == states
    assert gitea[2].json()["context"] == "fleetward"

    # Counted, shown in summary.json, and no secret anywhere the daemon wrote.
    summary = json.loads((ws.path("state") / "status" / "summary.json").read_text())
    assert summary["notifications"]["targets"]["hook"]["delivered"] >= 5
    assert summary["notifications"]["targets"]["gl"]["lastError"] is None
    written = daemon.output() + "".join(
        p.read_text(errors="replace") for p in ws.path("state").rglob("*.json")
    )
    for secret in (HOOK_SECRET, GH_TOKEN, GL_TOKEN, SLACK_PATH):
        assert secret not in written


# -- delivery: outages, restarts, a hanging receiver ------------------------------------------


def test_a_receiver_down_then_up_gets_every_event_once_in_order_even_across_a_restart(
    ws: Workspace, daemons: Daemons, secret_file: Path, tmp_path: Path
) -> None:
    repo, good = ws.repo()
    down = Receiver(port=free_port())  # not listening yet
    config = write_config(tmp_path / "fleetward.yaml", [hook(down, secret_file)])
    daemon = start(daemons, ws, config, repo_root=repo.root)
    daemon.wait_applied(good)
    second = repo.set_model("FH16 Aero", "second")
    daemon.wait_applied(second)
    outbox = ws.path("state") / "outbox.json"
    wait_until(lambda: len(json.loads(outbox.read_text())["entries"]) == 3, what="3 queued")
    metrics = daemon.metrics()
    assert sample(metrics, "fleetward_notification_outbox", target="hook") == 3
    assert sample(metrics, "fleetward_notifications_total", target="hook", result="failed") > 0
    summary = daemon.wait_summary(
        lambda s: (s.get("notifications") or {}).get("targets", {}).get("hook", {}).get("lastError")
    )
    assert "cannot connect" in summary["notifications"]["targets"]["hook"]["lastError"]["message"]

    # Stopped with a full outbox: the events wait on disk for the next daemon.
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    queued = [e["event"] for e in json.loads(outbox.read_text())["entries"]]
    assert [e["type"] for e in queued] == ["daemon-started", "applied", "applied", "daemon-stopped"]

    down.start()  # the receiver comes up
    try:
        third = repo.set_model("FH16 Electric", "third")
        restarted = start(daemons, ws, config, repo_root=repo.root)
        restarted.wait_applied(third)
        expected = [*(e["id"] for e in queued)]
        wait_until(lambda: len(down.events("/hook")) >= len(expected) + 2, what="all delivered")
        got = down.events("/hook")
        assert [e["id"] for e in got[: len(expected)]] == expected  # in order, each once
        assert [e["type"] for e in got[len(expected) :]] == ["daemon-started", "applied"]
        assert got[-1]["revision"]["id"] == third
        assert len({e["id"] for e in got}) == len(got)
        wait_until(lambda: not json.loads(outbox.read_text())["entries"], what="outbox emptied")
    finally:
        down.stop()


def test_a_once_run_delivers_its_events_before_it_exits_or_leaves_them_queued(
    ws: Workspace, receiver: Receiver, secret_file: Path, tmp_path: Path
) -> None:
    repo, good = ws.repo()
    config = write_config(tmp_path / "fleetward.yaml", [hook(receiver, secret_file)])
    state = ws.path("state")
    args = ("daemon", "--source", str(repo.root), "--state-dir", str(state), "--once")
    done = ws.fleetward(*args, "--config", str(config))
    assert done.returncode == 0, done.stderr
    # Sent before the exit, not at the next start: the receiver has them now.
    assert types(receiver) == ["daemon-started", "applied"]
    assert receiver.events("/hook")[1]["revision"]["id"] == good
    outbox = state / "outbox.json"
    assert json.loads(outbox.read_text())["entries"] == []

    down = Receiver(port=free_port())  # nobody listens: the wait is bounded
    elsewhere = write_config(
        tmp_path / "down.yaml", [hook(down, secret_file)], **{"notify-wait": "1s"}
    )
    repo.set_model("FH16 Aero", "second")
    bounded = ws.fleetward(*args, "--config", str(elsewhere))
    assert bounded.returncode == 0, bounded.stderr
    queued = [e["event"]["type"] for e in json.loads(outbox.read_text())["entries"]]
    assert queued == ["daemon-started", "applied"]  # left for the next start


def test_a_held_part_links_to_the_daemons_own_approve_endpoint_and_its_commit_stays_pending(
    ws: Workspace, daemons: Daemons, receiver: Receiver, secret_file: Path, tmp_path: Path
) -> None:
    repo, _ = ws.repo()
    head = repo.commit("north by hand", {"manifests/policies/north.yaml": MANUAL_POLICY})
    token_file = tmp_path / "gh-token"
    token_file.write_text(GH_TOKEN)
    github = {
        "name": "gh",
        "type": "github",
        "baseUrl": f"{receiver.url}/github",
        "repository": "acme/fleet",
        "tokenFile": str(token_file),
        **FAST,
    }
    wanted = ["planning", "applied", "held"]
    config = write_config(  # no external-url: links go to the daemon's --listen address
        tmp_path / "fleetward.yaml", [hook(receiver, secret_file, events=wanted), github]
    )
    token = "api-token-for-tests"
    daemon = start(daemons, ws, config, repo_root=repo.root, api_token=token)
    wait_until(lambda: types(receiver) == wanted, timeout=60, what="planning, applied, held")
    planning, applied, held = receiver.events("/hook")
    assert planning["counts"] == applied["counts"]  # what the plan was about to write
    (part,) = held["held"]
    assert part["policy"] == "north-by-hand" and part["waitingFor"] == ["approval"]
    approve = f"{daemon.url}/v0/operations/{part['operationId']}/approve"
    assert part["approveUrl"] == approve
    # The commit: pending while planning, pending on the held documents after the write.
    wait_until(lambda: len(receiver.received("/github")) == 2, timeout=60, what="two statuses")
    first, second = (r.json() for r in receiver.received("/github"))
    assert (first["state"], second["state"]) == ("pending", "pending")
    assert (
        second["description"].startswith(f"{head[:7]}: ")
        and "Fleet/north-yard" in second["description"]
    )

    reply = http(
        "POST",
        approve,
        body=json.dumps({"by": "alice"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert reply.status == 200, reply.text
    wait_until(lambda: types(receiver) == [*wanted, "applied"], timeout=60, what="the approved")
    wait_until(lambda: len(receiver.received("/github")) == 3, timeout=60, what="success")
    statuses = receiver.received("/github")
    assert statuses[2].json()["state"] == "success"
    assert {r.path for r in statuses} == {f"/github/repos/acme/fleet/statuses/{head}"}


def test_a_hanging_receiver_does_not_hold_up_reconciles(
    ws: Workspace, daemons: Daemons, secret_file: Path, tmp_path: Path
) -> None:
    hung = Receiver(hang=threading.Event()).start()
    try:
        repo, good = ws.repo()
        config = write_config(tmp_path / "fleetward.yaml", [hook(hung, secret_file, timeout="5m")])
        daemon = start(daemons, ws, config, repo_root=repo.root)
        daemon.wait_applied(good)
        wait_until(lambda: len(hung.received()) == 1, what="the first request, held")
        for n in range(3):
            daemon.wait_applied(repo.set_model(f"Model {n}", f"commit {n}"))
        # Four runs finished while the receiver held the first request: no run waited.
        assert len(hung.received()) == 1
        assert sample(daemon.metrics(), "fleetward_reconcile_total", result="success") >= 4
        hung.hang.set()  # type: ignore[union-attr]
        wait_until(
            lambda: types(hung) == ["daemon-started", "applied", "applied", "applied", "applied"],
            what="the held events, in order",
        )
    finally:
        hung.stop()


def notifier(tmp_path: Path, **target: Any) -> Notifier:
    settings = TargetSettings.model_validate({"name": "hook", "type": "webhook", **target})
    return Notifier(TinyDBStore(tmp_path / "state"), [settings], {"url": "test"})


def test_500_and_429_with_retry_after_are_retried_then_delivered_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers += [(500, {}, "boom"), (429, {"Retry-After": "1"}, "slow down")]
    sender = notifier(tmp_path, url=f"{receiver.url}/hook", backoff="10ms", rateLimit="1000/s")
    sender.daemon_started({})
    wait_until(lambda: len(receiver.received()) == 3, what="three attempts")
    first, second, third = receiver.received()
    assert first.json()["id"] == second.json()["id"] == third.json()["id"]
    assert third.at - second.at >= 1.0  # Retry-After: 1, not the 10 ms backoff
    wait_until(lambda: sender.stats["hook"].delivered == 1, what="counted delivered")
    assert sender.stats["hook"].failed == 2
    assert sender.summary()["targets"]["hook"]["lastError"]["message"] == "HTTP 429: slow down"
    sender.close()


def test_an_event_is_dropped_after_its_attempts_or_at_once_on_a_4xx_and_counted(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers += [(503, {}, "down")] * 3 + [(400, {}, "bad request")]
    sender = notifier(tmp_path, url=f"{receiver.url}/hook", backoff="10ms", attempts=3)
    sender.daemon_started({})
    sender.daemon_started({})  # a second event: after the first is given up
    sender.daemon_started({})  # a third: delivered
    wait_until(lambda: len(receiver.received()) == 5, what="3 + 1 + 1 requests")
    wait_until(lambda: sender.stats["hook"].delivered == 1, what="the third delivered")
    assert sender.stats["hook"].dropped == 2
    ids = [r.json()["id"] for r in receiver.received()]
    assert ids[0] == ids[1] == ids[2] != ids[3] != ids[4]
    assert sender.store.outbox_pending() == []
    sender.close()


def test_a_rate_limit_spaces_requests_to_one_target(tmp_path: Path, receiver: Receiver) -> None:
    sender = notifier(tmp_path, url=f"{receiver.url}/hook", rateLimit="5/s")
    for _ in range(4):
        sender.daemon_started({})
    wait_until(lambda: len(receiver.received()) == 4, what="four requests")
    times = [r.at for r in receiver.received()]
    # A lower bound only (a loaded machine spaces them more, never less): 5/s lets four
    # requests span at least 0.6 s; each arrival may lag its send, so allow 10 %.
    assert times[-1] - times[0] >= 0.9 * 3 / 5, times
    sender.close()


# -- configuration ------------------------------------------------------------------------------


def test_a_missing_secret_refuses_the_start_and_a_bad_reload_keeps_the_old_targets(
    ws: Workspace, daemons: Daemons, receiver: Receiver, secret_file: Path, tmp_path: Path
) -> None:
    repo, good = ws.repo()
    missing = write_config(tmp_path / "missing.yaml", [hook(receiver, tmp_path / "no-such-secret")])
    refused = ws.fleetward(
        "daemon", "--config", str(missing), "--state-dir", str(ws.path("state")), "--once"
    )
    assert refused.returncode == 1
    assert "Cannot read secretFile" in refused.stderr and "no-such-secret" in refused.stderr
    assert "Traceback" not in refused.stderr and "Internal error" not in refused.stderr

    config = write_config(tmp_path / "fleetward.yaml", [hook(receiver, secret_file)])
    daemon = start(daemons, ws, config, repo_root=repo.root)
    daemon.wait_applied(good)
    for bad in (
        [hook(receiver, secret_file, events=["applied", "exploded"])],
        [hook(receiver, secret_file, secretFile=str(tmp_path / "gone"))],
        [{"name": "x", "type": "pager", "url": receiver.url}],
    ):
        write_config(config, bad)
        before = len(not_reloaded(daemon))
        daemon.signal(signal.SIGHUP)
        daemon.wait(lambda b=before: len(not_reloaded(daemon)) > b, what="the reload refused")
    errors = [line["message"] for line in not_reloaded(daemon)]
    assert "notifications[0].events[1]" in errors[0], errors
    assert "Cannot read secretFile" in errors[1] and "gone" in errors[1], errors
    assert "notifications[0].type" in errors[2], errors
    # The previous targets still work.
    daemon.wait_applied(repo.set_model("FH16 Aero", "after the bad reloads"))
    wait_until(lambda: types(receiver).count("applied") == 2, what="applied after the reloads")


def not_reloaded(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [
        line
        for line in daemon.logs()
        if str(line.get("message", "")).startswith("configuration not reloaded")
    ]


def test_notify_test_sends_a_test_event_and_prints_the_answer(
    tmp_path: Path, receiver: Receiver, secret_file: Path
) -> None:
    receiver.answers.append((202, {}, "accepted by the receiver"))
    config = write_config(tmp_path / "fleetward.yaml", [hook(receiver, secret_file)])
    result = CliRunner().invoke(cli, ["notify", "test", "hook", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "HTTP 202" in result.output and "accepted by the receiver" in result.output
    (request,) = receiver.received("/hook")
    assert request.json()["type"] == "test"
    signature = hmac.new(HOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-hub-signature-256"] == f"sha256={signature}"

    receiver.answers.append((500, {}, "receiver broke"))
    failed = CliRunner().invoke(cli, ["notify", "test", "hook", "--config", str(config)])
    assert failed.exit_code == 1 and "HTTP 500" in failed.output
    unknown = CliRunner().invoke(cli, ["notify", "test", "nope", "--config", str(config)])
    assert unknown.exit_code == 1 and "hook" in unknown.output


def test_the_readme_config_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Notifications", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "fleetward.yaml"
    path.write_text(example)
    values = read_config_file(str(path))
    assert [t.type for t in values["notifications"]] == list(TARGET_TYPES)


def test_a_slack_url_written_in_the_config_file_is_refused_as_a_secret(tmp_path: Path) -> None:
    """A Slack incoming-webhook URL holds its token: it is read from urlFile or urlEnv,
    never taken from the file every reader of the config sees."""
    url = f"https://hooks.slack.com{SLACK_PATH}"
    path = tmp_path / "fleetward.yaml"
    path.write_text(f"notifications:\n  - name: chat\n    type: slack\n    url: {url}\n")
    with pytest.raises(FleetwardError) as caught:
        read_config_file(str(path))
    [problem] = caught.value.problems
    assert "notifications[0]" in problem.error, problem
    assert "a Slack URL is a secret" in problem.reason, problem
    assert "urlFile" in problem.reason and "urlEnv" in problem.reason, problem
    assert str(path) in (problem.location or ""), problem
    with pytest.raises(ValueError, match="a Slack URL is a secret"):
        TargetSettings.model_validate({"name": "chat", "type": "slack", "url": url})


def test_a_reload_joins_the_old_sender_and_keeps_the_head_events_attempts(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A reload (SIGHUP) ends the old sender before starting its successor, and the event
    being retried keeps its attempt count: reloading does not buy a dead receiver more
    attempts. With attempts=2 and a long backoff, the new sender's first try is the
    event's second and last."""
    receiver.answers += [(503, {}, "down")] * 5
    fields = {"url": f"{receiver.url}/hook", "backoff": "120s", "attempts": 2}
    sender = notifier(tmp_path, **fields)
    before = set(threading.enumerate())
    sender.daemon_started({})
    wait_until(lambda: sender.stats["hook"].failed == 1, what="the first attempt failed")
    [old] = [t for t in set(threading.enumerate()) - before if t.name == "fleetward-notify-hook"]
    settings = TargetSettings.model_validate({"name": "hook", "type": "webhook", **fields})
    sender.reconfigure([settings])
    assert not old.is_alive()  # joined before its successor started
    alive = [t for t in set(threading.enumerate()) - before if t.name == "fleetward-notify-hook"]
    assert len(alive) == 1, alive  # its one successor
    wait_until(lambda: sender.stats["hook"].dropped == 1, what="given up after its 2 attempts")
    assert len(receiver.received()) == 2
    assert sender.stats["hook"].failed == 2
    assert sender.store.outbox_pending() == []
    sender.close()


def _failed_run(n: int) -> RunReport:
    """A run of revision n that failed: one `failed` event."""
    op = dataclasses.replace(Operation.new("poll", now_iso()), state=OperationState.FAILURE)
    return RunReport(
        operation=op,
        revision=Revision(f"{n:040x}", "git"),
        plan=None,
        applied=None,
        store=None,
        problems=(),
        manifest_errors=0,
        fetch_failed=False,
        phases={},
        duration=0.1,
    )


def test_events_pushed_out_of_a_full_outbox_are_counted_per_target(tmp_path: Path) -> None:
    """No sender runs (the receivers are down): each target keeps its newest entries and
    counts the ones pushed out, in metrics and summary.json."""
    store = MemoryStore()
    store.outbox_limit = 3
    targets = [
        TargetSettings.model_validate({"name": name, "type": "webhook", "url": "http://x/"})
        for name in ("hook", "other")
    ]
    sender = Notifier(store, targets, {"url": "test"})
    for n in range(5):
        sender.run_finished(_failed_run(n))
    summary = sender.summary()
    for name in ("hook", "other"):
        assert summary["targets"][name]["dropped"] == 2, summary
        assert summary["targets"][name]["pending"] == 3, summary
        assert [e.event["revision"]["id"][-1] for e in store.outbox_pending(name)] == [
            "2",
            "3",
            "4",
        ]
    registry = CollectorRegistry()
    registry.register(sender.collector())
    for name in ("hook", "other"):
        labels = {"target": name, "result": "dropped"}
        assert registry.get_sample_value("fleetward_notifications_total", labels) == 2


def _ok_run(n: int) -> RunReport:
    """A run of revision n that succeeded, writing nothing."""
    failed = _failed_run(n)
    op = dataclasses.replace(failed.operation, state=OperationState.SUCCESS)
    return dataclasses.replace(failed, operation=op)


def test_a_restarted_daemon_does_not_tell_a_failure_again_and_tells_the_recovery(
    tmp_path: Path, receiver: Receiver
) -> None:
    """What was told lives in the store beside the outbox: the daemon after a restart
    retries the failing revision quietly, then tells the fix as `recovered`."""
    fields = {"url": f"{receiver.url}/hook", "events": ["failed", "recovered"]}
    settings = [TargetSettings.model_validate({"name": "hook", "type": "webhook", **fields})]
    first = Notifier(TinyDBStore(tmp_path / "state"), settings, {"url": "test"})
    first.daemon_started({})
    first.run_finished(_failed_run(1))
    first.run_finished(_failed_run(1))
    wait_until(lambda: types(receiver) == ["failed"], what="the failure told")
    first.daemon_stopped("SIGTERM")

    second = Notifier(TinyDBStore(tmp_path / "state"), settings, {"url": "test"})
    second.daemon_started({})
    for _ in range(3):
        second.run_finished(_failed_run(1))  # retried after the restart: no news
    second.run_finished(_ok_run(2))
    wait_until(lambda: types(receiver) == ["failed", "recovered"], what="the recovery told")
    assert second.store.outbox_pending() == []
    second.close()
    assert types(receiver) == ["failed", "recovered"]
