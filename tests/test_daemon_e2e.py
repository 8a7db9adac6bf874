"""`fleetward daemon` end to end: real repositories, a real daemon process, real HTTP.

Every daemon here polls every 60 s, far longer than any test waits: a revision
applied within seconds of a commit was applied by the watch (local
repositories) or the webhook (remotes), never by the poll.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    NORTH,
    Daemons,
    GitRepo,
    Workspace,
    assert_error_body,
    big_repo,
    daemons_fixture,
    operations_on_disk,
    sample,
    samples,
    summary_of,
    wait_until,
    ws_fixture,
)

SECRET = "s3cret-for-webhooks"
TOKEN = "api-token-for-tests"
DESIGN_METRICS = (
    "fleetward_reconcile_total",
    "fleetward_reconcile_duration_seconds_bucket",
    "fleetward_reconcile_duration_seconds_sum",
    "fleetward_reconcile_duration_seconds_count",
    "fleetward_objects",
    "fleetward_plan_changes",
    "fleetward_drift_objects",
    "fleetward_manifest_errors",
    "fleetward_source_fetch_failures_total",
    "fleetward_last_success_timestamp_seconds",
    "fleetward_operations",
    "fleetward_build_info",
)
LOCATION = re.compile(r"^manifests/fleets/north-yard\.yaml:\d+:\d+$")


def store_object(ws: Workspace, state: Path, key: str) -> dict[str, Any]:
    shown = ws.fleetward("state", "show", "--json", "--state-dir", str(state))
    assert shown.returncode == 0, shown.stderr
    objects: dict[str, dict[str, Any]] = {o["key"]: o for o in json.loads(shown.stdout)["objects"]}
    return objects[key]


# -- a local repository: the watch ----------------------------------------------------------------


def test_a_commit_to_a_local_repository_is_applied_without_waiting_for_the_poll(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    # The next poll is an hour away, so only the watch can apply the commit within the wait
    # (the wait is generous: how fast is the watch's business, not this test's).
    daemon = daemons.start(repo.root, state, interval="1h")

    summary = daemon.wait_applied(first)
    assert summary["source"]["revisionSeen"] == first
    assert summary["daemon"]["listen"] == daemon.url
    assert summary["ready"] is True
    assert summary["objects"]["Asset"]["active"] > 0

    second = repo.set_model("FH16 Aero")
    summary = daemon.wait_applied(second, timeout=120)
    assert summary["inSync"] is True
    assert summary["lastOperation"]["planSummary"]["update"] == 1
    assert "watch" in summary["lastOperation"]["trigger"].split(",")

    truck = store_object(ws, state, "Asset/TRK-1001")
    assert truck["spec"]["attributes"]["model"] == "FH16 Aero"
    assert truck["appliedRevision"] == second

    plan_text = (state / "status" / "plan.txt").read_text()
    assert "TRK-1001" in plan_text
    assert json.loads((state / "status" / "plan.json").read_text())

    # --log-format json: every line the daemon wrote is one JSON object.
    for line in daemon.output().splitlines():
        assert isinstance(json.loads(line), dict), line


def test_an_edit_in_a_plain_directory_is_applied_without_waiting_for_the_poll(
    ws: Workspace, daemons: Daemons
) -> None:
    plain = ws.path("plain")
    shutil.copytree(Path(__file__).resolve().parent.parent / "manifests", plain / "manifests")
    state = ws.path("state")
    daemon = daemons.start(plain, state, "--no-git")
    first = daemon.wait_summary(
        lambda s: s["lastOperation"]["state"] == "SUCCESS", what="the first run"
    )["applied"]["revision"]
    assert first.startswith("sha256:")
    assert first == daemon.summary()["source"]["revisionSeen"]

    north = plain / NORTH
    north.write_text(
        north.read_text().replace("model: FH16, year: 2022", "model: FH16 Aero, year: 2022")
    )
    summary = daemon.wait_summary(
        lambda s: (
            s["applied"]["revision"] not in (None, first)
            and s["lastOperation"]["state"] == "SUCCESS"
        ),
        timeout=5,
        what="the edit to be applied",
    )
    assert summary["applied"]["revision"].startswith("sha256:")
    assert store_object(ws, state, "Asset/TRK-1001")["spec"]["attributes"]["model"] == "FH16 Aero"


def test_an_invalid_commit_changes_nothing_and_reports_located_errors(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, good = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    daemon.wait_applied(good)
    assert daemon.get("/readyz").status == 200
    store_before = (state / "state.json").read_bytes()

    # A YAML syntax error (an unclosed flow sequence) in one file.
    repo.replace(NORTH, "model: FH16, year: 2022", "model: [FH16, year: 2022")
    bad = repo.commit("broken YAML")
    summary = daemon.wait_summary(
        lambda s: s["source"]["revisionSeen"] == bad and s["lastOperation"]["state"] == "FAILURE",
        timeout=5,
        what="the invalid revision to be seen and refused",
    )
    assert summary["applied"]["revision"] == good  # the last good revision stays
    assert summary["manifestErrors"] > 0
    assert summary["ready"] is False
    assert summary["errors"], summary
    for error in summary["errors"]:
        assert LOCATION.match(error["location"]), error
    assert (state / "state.json").read_bytes() == store_before

    assert sample(daemon.metrics(), "fleetward_manifest_errors") > 0
    ready = daemon.get("/readyz")
    assert ready.status == 503
    reasons = ready.json()["reasons"]
    assert any("manifest error" in r for r in reasons), reasons
    assert daemon.get("/healthz").status == 200  # alive, only not ready

    # An unknown field is refused the same way, with a hint.
    repo.replace(NORTH, "model: [FH16, year: 2022", "model: FH16, year: 2022")
    repo.replace(NORTH, "      type: truck", "      tpye: truck")
    unknown = repo.commit("a typo in a field name")
    summary = daemon.wait_summary(
        lambda s: (
            s["source"]["revisionSeen"] == unknown and s["lastOperation"]["state"] == "FAILURE"
        ),
        timeout=5,
        what="the unknown field to be refused",
    )
    assert summary["applied"]["revision"] == good
    assert summary["manifestErrors"] >= 1
    assert any('"tpye"' in e["error"] or "tpye" in e["error"] for e in summary["errors"])
    assert any("type" in e["resolution"] for e in summary["errors"])
    assert all(LOCATION.match(e["location"]) for e in summary["errors"])
    assert (state / "state.json").read_bytes() == store_before

    # The fix is applied, and the daemon is ready again.
    repo.replace(NORTH, "      tpye: truck", "      type: truck")
    fixed = repo.set_model("FH16 Aero", "fix the typo")
    summary = daemon.wait_applied(fixed, timeout=10)
    assert summary["manifestErrors"] == 0
    assert summary["errors"] == []
    assert summary["ready"] is True
    assert daemon.get("/readyz").status == 200
    assert sample(daemon.metrics(), "fleetward_manifest_errors") == 0
    assert store_object(ws, state, "Asset/TRK-1001")["spec"]["attributes"]["model"] == "FH16 Aero"


# -- a remote: webhooks, force-pushes, outages ----------------------------------------------------


def test_a_push_to_a_remote_is_applied_on_a_signed_webhook_only(
    ws: Workspace, daemons: Daemons
) -> None:
    work, first = ws.repo()
    remote = ws.remote(work)
    state = ws.path("state")
    daemon = daemons.start(remote.url, state, webhook_secret=SECRET)
    summary = daemon.wait_applied(first)
    assert summary["source"]["mode"] == "remote"
    assert (state / "cache" / "git").is_dir()  # the clone lives in the state directory
    before = daemon.operations()

    second = work.set_model("FH16 Aero")
    work.git("push", "-q", "origin", "main")

    rejected = [
        daemon.webhook(None),  # no signature at all
        daemon.webhook("not-the-secret"),  # signed with another secret
        daemon.webhook(None, headers={"X-Hub-Signature-256": "md5=abc"}),
        daemon.webhook(None, headers={"X-Gitlab-Token": "not-the-secret"}),
    ]
    for reply in rejected:
        assert_error_body(reply, 401)
    assert daemon.operations() == before  # nothing was queued
    assert daemon.summary()["applied"]["revision"] == first

    accepted = daemon.webhook(SECRET)
    assert accepted.status == 202, accepted.text
    content = accepted.json()["content"]
    assert content["accepted"] is True
    op = daemon.wait_operation(content["operation_id"])
    assert op["state"] == "SUCCESS", op
    assert "webhook" in op["trigger"].split(",")
    assert op["revision"] == second
    summary = daemon.wait_applied(second)
    assert summary["lastOperation"]["id"] == content["operation_id"]

    after = daemon.operations()
    assert [o["operation_id"] for o in after[: len(before)]] == [o["operation_id"] for o in before]
    assert [o["trigger"] for o in after[len(before) :]] == ["webhook"]

    # GitLab's token header is accepted too.
    gitlab = daemon.post(
        "/v0/webhook", b"{}", {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"}
    )
    assert gitlab.status == 202, gitlab.text
    assert daemon.wait_operation(gitlab.json()["content"]["operation_id"])["state"] == "SUCCESS"


def test_a_force_push_that_rewinds_the_branch_is_followed(ws: Workspace, daemons: Daemons) -> None:
    work, first = ws.repo()
    remote = ws.remote(work)
    state = ws.path("state")
    daemon = daemons.start(remote.url, state, webhook_secret=SECRET)
    daemon.wait_applied(first)

    second = work.set_model("FH16 Aero")
    work.git("push", "-q", "origin", "main")
    assert daemon.webhook(SECRET).status == 202
    daemon.wait_applied(second)
    assert store_object(ws, state, "Asset/TRK-1001")["spec"]["attributes"]["model"] == "FH16 Aero"

    work.git("push", "-q", "--force", "origin", f"{first}:refs/heads/main")
    assert remote.git("rev-parse", "main") == first
    assert daemon.webhook(SECRET).status == 202
    summary = daemon.wait_applied(first)
    assert summary["source"]["revisionSeen"] == first
    assert store_object(ws, state, "Asset/TRK-1001")["spec"]["attributes"]["model"] == "FH16"


def test_a_remote_that_disappears_fails_runs_and_the_daemon_recovers(
    ws: Workspace, daemons: Daemons
) -> None:
    work, first = ws.repo()
    remote = ws.remote(work)
    state = ws.path("state")
    daemon = daemons.start(remote.url, state, webhook_secret=SECRET)
    daemon.wait_applied(first)
    assert sample(daemon.metrics(), "fleetward_source_fetch_failures_total") == 0
    store_before = (state / "state.json").read_bytes()

    moved = remote.root.with_name("remote-moved.git")
    remote.root.rename(moved)
    reply = daemon.webhook(SECRET)
    assert reply.status == 202
    op = daemon.wait_operation(reply.json()["content"]["operation_id"])
    assert op["state"] == "FAILURE", op
    assert op["errors"], op

    def counted() -> str | None:
        text = daemon.metrics()
        return text if sample(text, "fleetward_source_fetch_failures_total") >= 1 else None

    metrics = daemon.wait(counted, what="a fetch failure to be counted")
    assert sample(metrics, "fleetward_reconcile_total", result="failure") >= 1
    summary = daemon.summary()
    assert summary["source"]["fetchOk"] is False
    assert summary["applied"]["revision"] == first  # the last good revision stays
    assert (state / "state.json").read_bytes() == store_before
    assert daemon.get("/healthz").status == 200
    daemon.alive()

    moved.rename(remote.root)
    second = work.set_model("FH16 Aero")
    work.git("push", "-q", "origin", "main")
    assert daemon.webhook(SECRET).status == 202
    summary = daemon.wait_applied(second)
    assert summary["source"]["fetchOk"] is True
    assert daemon.get("/readyz").status == 200


# -- process life ---------------------------------------------------------------------------------


def test_sigterm_stops_the_daemon_with_exit_code_0(ws: Workspace, daemons: Daemons) -> None:
    repo, first = ws.repo()
    daemon = daemons.start(repo.root, ws.path("state"))
    daemon.wait_applied(first)

    assert daemon.terminate(timeout=120) == 0  # the timeout only catches a hang
    assert daemon.logged("stopped"), daemon.output()
    assert "Traceback" not in daemon.output()


def test_a_second_daemon_on_the_same_state_directory_exits_1_naming_the_first(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    one = daemons.start(repo.root, state)
    one.wait_applied(first)

    two = daemons.start(repo.root, state, wait=False)
    assert two.proc.wait(timeout=15) == 1
    out = two.output()
    assert f"PID {one.pid}" in out, out
    assert "Traceback" not in out
    assert one.get("/healthz").status == 200  # the first goes on
    one.alive()


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_follow_the_design_and_pass_promtool(ws: Workspace, daemons: Daemons) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    daemon.wait_applied(first)
    second = repo.set_model("FH16 Aero")
    daemon.wait_applied(second)
    text = daemon.metrics()

    names = {name for name, _, _ in samples(text)}
    missing = [name for name in DESIGN_METRICS if name not in names]
    assert not missing, missing
    phases = {labels.get("phase") for name, labels, _ in samples(text) if "duration" in name}
    assert {"fetch", "load", "desire", "plan", "apply"} <= phases
    assert sample(text, "fleetward_reconcile_total", result="success") >= 2
    assert sample(text, "fleetward_objects", kind="Asset", state="active") > 0
    assert sample(text, "fleetward_plan_changes", action="update") == 1
    assert sample(text, "fleetward_operations", state="SUCCESS") >= 2
    assert sample(text, "fleetward_last_success_timestamp_seconds") > 0
    assert sample(text, "fleetward_build_info") == 1

    # No object id in any label: only bounded values.
    shown = json.loads(ws.fleetward("state", "show", "--json", "--state-dir", str(state)).stdout)
    ids = {o["key"].split("/", 1)[1] for o in shown["objects"]}
    assert "TRK-" not in text and "TANK-" not in text
    for name, labels, _ in samples(text):
        assert not ids & set(labels.values()), (name, labels)

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: the exposition format is not checked by it")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        check=False,
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- --once and the operations CLI ----------------------------------------------------------------


def once(ws: Workspace, repo: GitRepo, state: Path) -> subprocess.CompletedProcess[str]:
    return ws.fleetward(
        "daemon",
        "--once",
        "--source",
        str(repo.root),
        "--state-dir",
        str(state),
        "--log-format",
        "json",
    )


def test_once_exits_0_on_success_and_1_on_an_invalid_revision(ws: Workspace) -> None:
    repo, good = ws.repo()
    state = ws.path("state")

    done = once(ws, repo, state)
    assert done.returncode == 0, done.stderr
    summary = summary_of(state)
    assert summary["applied"]["revision"] == good
    assert summary["lastOperation"]["state"] == "SUCCESS"
    assert summary["lastOperation"]["trigger"] == "once"
    assert summary["daemon"]["listen"] is None  # --once serves no HTTP
    for name in ("plan.txt", "plan.json"):
        assert (state / "status" / name).is_file()
    store = (state / "state.json").read_bytes()

    repo.replace(NORTH, "      type: truck", "      tpye: truck")
    bad = repo.commit("typo")
    done = once(ws, repo, state)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    summary = summary_of(state)
    assert summary["source"]["revisionSeen"] == bad
    assert summary["applied"]["revision"] == good
    assert summary["lastOperation"]["state"] == "FAILURE"
    assert summary["manifestErrors"] >= 1
    assert (state / "state.json").read_bytes() == store

    # No change to apply is a success too.
    repo.replace(NORTH, "      tpye: truck", "      type: truck")
    repo.commit("fix")
    done = once(ws, repo, state)
    assert done.returncode == 0, done.stderr


def test_operations_list_and_show_read_what_the_daemon_recorded(ws: Workspace) -> None:
    repo, _ = ws.repo()
    state = ws.path("state")
    assert once(ws, repo, state).returncode == 0
    repo.replace(NORTH, "      type: truck", "      tpye: truck")
    repo.commit("typo")
    assert once(ws, repo, state).returncode == 1

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return ws.fleetward("operations", *args, "--state-dir", str(state))

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    content = json.loads(listed.stdout)["content"]
    assert content["count"] == 2
    failed, succeeded = content["results"]  # newest first
    assert (failed["state"], failed["state_code"]) == ("FAILURE", 90)
    assert (succeeded["state"], succeeded["state_code"]) == ("SUCCESS", 80)
    assert failed["error_count"] >= 1
    assert [t["state"] for t in succeeded["transitions"]][:3] == [
        "CREATED",
        "RESOLVING",
        "RESOLVED",
    ]

    only_failed = json.loads(cli("list", "--json", "--state", "90").stdout)["content"]
    assert [o["operation_id"] for o in only_failed["results"]] == [failed["operation_id"]]
    oldest = json.loads(cli("list", "--json", "--ordering", "created_at", "--limit", "1").stdout)
    assert [o["operation_id"] for o in oldest["content"]["results"]] == [succeeded["operation_id"]]

    table = cli("list")
    assert table.returncode == 0, table.stderr
    # The table shows the 8-character prefix `show` takes; --json has the full ids.
    assert failed["operation_id"][:8] in table.stdout
    assert succeeded["operation_id"][:8] in table.stdout
    assert "FAILURE" in table.stdout and "SUCCESS" in table.stdout

    shown = cli("show", failed["operation_id"])
    assert shown.returncode == 0, shown.stderr
    assert f"Operation {failed['operation_id']}" in shown.stdout
    assert "tpye" in shown.stdout  # the errors are shown

    as_json = cli("show", succeeded["operation_id"][:8], "--json")  # a unique prefix
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["content"] == succeeded

    unknown = cli("show", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1
    assert "No operation '00000000-0000-0000-0000-000000000000'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_operations_cli_reads_a_running_daemons_log(ws: Workspace, daemons: Daemons) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    summary = daemon.wait_applied(first)
    op_id = summary["lastOperation"]["id"]

    shown = ws.fleetward("operations", "show", op_id, "--json", "--state-dir", str(state))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["content"] == daemon.operation(op_id)
    wait_until(lambda: daemon.get("/healthz").status == 200, timeout=5)


def test_a_plan_blocked_by_a_guard_leaves_object_status_files(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, good = ws.repo()
    state = ws.path("state")
    # The north yard is a few trucks, under the default floor of 10 stops: judge them all.
    daemon = daemons.start(repo.root, state, "--min-stop-count", "1")
    daemon.wait_applied(good)
    store_before = (state / "state.json").read_bytes()
    assert not (state / "status" / "objects").exists() or not list(
        (state / "status" / "objects").rglob("*.json")
    )

    (repo.root / NORTH).unlink()  # stops every north-yard asset: a mass stop
    blocked = repo.commit("remove the north yard")
    summary = daemon.wait_summary(
        lambda s: (
            s["source"]["revisionSeen"] == blocked and s["lastOperation"]["state"] == "FAILURE"
        ),
        timeout=5,
        what="the mass stop to be blocked",
    )
    assert summary["applied"]["revision"] == good
    assert any("mass-stop" in e["error"] for e in summary["errors"]), summary["errors"]
    assert summary["manifestErrors"] == 0 and summary["inSync"] is False
    assert (state / "state.json").read_bytes() == store_before

    truck = json.loads((state / "status" / "objects" / "Asset" / "TRK-1001.json").read_text())
    assert truck["address"] == "Asset/TRK-1001" and truck["action"] == "stop"
    assert truck["observedRevision"] == blocked
    conditions = {c["type"]: c for c in truck["conditions"]}
    assert set(conditions) == {"Ready", "Reconciling", "Stalled"}
    assert conditions["Ready"]["status"] == "False"
    assert (conditions["Stalled"]["status"], conditions["Stalled"]["reason"]) == ("True", "Blocked")
    assert summary["objectStatusFiles"] == len(list((state / "status" / "objects").rglob("*.json")))

    repo.git("revert", "--no-edit", "HEAD")
    fixed = repo.head()
    daemon.wait_applied(fixed)
    assert list((state / "status" / "objects").rglob("*.json")) == []


def test_webhooks_during_a_run_coalesce_into_one_queued_run(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, first = big_repo(ws.path("big"), ws.env)
    state = ws.path("state")
    daemon = daemons.start(repo.root, state, webhook_secret=SECRET)
    in_flight = daemon.wait(
        lambda: [o for o in operations_on_disk(state) if o["state"] == "RESOLVING"],
        what="the first run to be in flight",
    )[0]

    replies = [daemon.webhook(SECRET) for _ in range(6)]
    assert all(r.status == 202 for r in replies)
    queued = {r.json()["content"]["operation_id"] for r in replies}
    assert len(queued) == 1, queued  # one queued run carries all six
    (queued_id,) = queued
    assert queued_id != in_flight["operation_id"]

    done = daemon.wait_operation(queued_id, timeout=20)
    assert done["state"] == "SUCCESS" and done["trigger"] == "webhook"
    assert daemon.operation(in_flight["operation_id"])["state"] == "SUCCESS"
    assert len(daemon.operations()) == 2
    daemon.wait_applied(first)


def test_sigterm_during_a_run_exits_0_and_leaves_no_operation_unfinished(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, _ = big_repo(ws.path("big"), ws.env)
    state = ws.path("state")
    daemon = daemons.start(repo.root, state, webhook_secret=SECRET)
    daemon.wait(
        lambda: any(o["state"] == "RESOLVING" for o in operations_on_disk(state)),
        what="the first run to be in flight",
    )
    queued = daemon.webhook(SECRET).json()["content"]["operation_id"]

    assert daemon.terminate(timeout=120) == 0  # the timeout only catches a hang
    assert "Traceback" not in daemon.output()

    ops = {o["operation_id"]: o for o in operations_on_disk(state)}
    assert ops[queued]["state"] == "CANCELLED"  # it never started
    assert all(o["state"] in ("SUCCESS", "CANCELLED") for o in ops.values()), ops
    # The store is whole: the run either wrote it completely or not at all.
    shown = ws.fleetward("state", "show", "--json", "--state-dir", str(state))
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)["objects"]) in (0, 10_000)


def test_a_restart_ends_the_operation_a_killed_daemon_left_running(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, first = big_repo(ws.path("big"), ws.env)
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    running = daemon.wait(
        lambda: [o for o in operations_on_disk(state) if o["state"] == "RESOLVING"],
        what="the first run to be in flight",
    )[0]
    daemon.kill()  # SIGKILL: no chance to record anything
    assert operations_on_disk(state)[0]["state"] == "RESOLVING"

    again = daemons.start(repo.root, state)
    again.wait_applied(first, timeout=20)
    ended = again.operation(running["operation_id"])
    assert ended["state"] == "FAILURE"
    assert "stopped during this run" in ended["message"]
    warned = again.logged("ended an operation a previous daemon left running")
    assert [line["operation"] for line in warned] == [running["operation_id"]]


def test_once_refuses_a_state_directory_a_daemon_is_running_on(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    daemon.wait_applied(first)
    done = once(ws, repo, state)
    assert done.returncode == 1
    assert f"PID {daemon.pid}" in done.stderr
    daemon.alive()


def test_a_listen_address_in_use_exits_1_with_the_reason(ws: Workspace, daemons: Daemons) -> None:
    import socket

    repo, _ = ws.repo()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        daemon = daemons.spawn(
            "--source", str(repo.root), "--state-dir", str(ws.path("state")),
            "--listen", f"127.0.0.1:{port}",
        )  # fmt: skip
        assert daemon.proc.wait(timeout=15) == 1
    out = daemon.output()
    assert f"Cannot listen on 127.0.0.1:{port}" in out, out
    assert "Traceback" not in out


def test_a_damaged_operation_log_does_not_stop_the_daemon_for_good(
    ws: Workspace, daemons: Daemons
) -> None:
    """A run that cannot record its Operation fails; the next one, once fixed, must run.

    The log is a file an operator (or a full disk) can damage while the daemon
    runs. The worker must survive that, not die and leave /healthz answering
    200 for a daemon that never reconciles again.
    """
    repo, first = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    daemon.wait_applied(first)

    (state / "operations.json").write_text("{not json")
    repo.set_model("FH16 Aero")
    daemon.wait(lambda: "operations.json" in daemon.output(), what="the damaged log to be reported")
    daemon.alive()

    (state / "operations.json").unlink()  # the operator moves the damaged log away
    third = repo.set_model("FH16 XL")
    daemon.wait_applied(third, timeout=10)
    assert store_object(ws, state, "Asset/TRK-1001")["spec"]["attributes"]["model"] == "FH16 XL"


def test_status_does_not_trust_a_summary_the_daemon_stopped_writing(ws: Workspace) -> None:
    """fleetward status after the daemon died: the last summary said ready, but it is
    older than the readiness bound, so status says so and exits 1."""
    work, _ = ws.repo()
    state = ws.path("state")
    once = ws.fleetward("daemon", "--once", "--source", str(work.root), "--state-dir", str(state))
    assert once.returncode == 0, once.stderr
    fresh = ws.fleetward("status", "--state-dir", str(state))
    assert fresh.returncode == 0 and fresh.stdout.startswith("Ready"), fresh.stdout
    path = state / "status" / "summary.json"
    summary = json.loads(path.read_text())
    summary["updatedAt"] = "2026-01-01T00:00:00Z"
    path.write_text(json.dumps(summary))
    stale = ws.fleetward("status", "--state-dir", str(state))
    assert stale.returncode == 1
    assert "last written" in stale.stdout and "still running?" in stale.stdout


# Where a run the daemon's stop cancelled may have stopped: every checkpoint before the write.
STOP_CHECKPOINTS = (
    "while fetching the source",
    "after fetching the source",
    "while loading the manifests",
    "after loading the manifests",
    "while expanding the manifests",
    "after expanding the manifests",
    "while planning",
    "after planning",
    "before the write",
)


def test_sigterm_while_resolving_a_large_revision_cancels_the_run_at_a_checkpoint(
    ws: Workspace, daemons: Daemons
) -> None:
    """30,000 assets in 30 files: the run stops at the next checkpoint inside the load,
    records CANCELLED 110 with the reason, and the next start finds nothing to end."""
    repo, _ = big_repo(ws.path("big"), ws.env, assets=30_000, per_file=1_000)
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    running = daemon.wait(
        lambda: [o for o in operations_on_disk(state) if o["state"] == "RESOLVING"],
        what="the first run to be resolving",
    )[0]

    # The bound is the README's 10 s with a margin for a loaded machine.
    assert daemon.terminate(timeout=30) == 0
    assert "Traceback" not in daemon.output()

    ops = {o["operation_id"]: o for o in operations_on_disk(state)}
    op = ops[running["operation_id"]]
    assert (op["state"], op["state_code"]) == ("CANCELLED", 110), op
    prefix = "daemon stopped (SIGTERM) before the write; the run was abandoned "
    assert op["message"].startswith(prefix), op["message"]
    assert op["message"].removeprefix(prefix) in STOP_CHECKPOINTS, op["message"]
    assert not (state / "state.json").exists()  # the store was never written
    summary = summary_of(state)
    assert summary["lastOperation"]["state"] == "CANCELLED"
    assert summary["lastOperation"]["message"] == op["message"]

    # The next start has no operation a crash left running to end.
    again = daemons.start(repo.root, state)
    assert again.terminate(timeout=30) == 0
    assert not again.logged("ended an operation a previous daemon left running")
    after = {o["operation_id"]: o for o in operations_on_disk(state)}
    assert after[op["operation_id"]] == op
    assert not [o for o in after.values() if o["state"] == "FAILURE"], after


def test_status_says_a_stopped_daemon_is_not_running_at_once(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    daemon = daemons.start(repo.root, state)
    daemon.wait_applied(first)
    running = ws.fleetward("status", "--state-dir", str(state))
    assert running.returncode == 0 and running.stdout.startswith("Ready"), running.stdout

    assert daemon.terminate(timeout=30) == 0
    stopped = ws.fleetward("status", "--state-dir", str(state))
    assert stopped.returncode == 1
    first_line = stopped.stdout.splitlines()[0]
    expected = f"Not running: the daemon (PID {daemon.pid}) stopped at "
    assert first_line.startswith(expected), first_line
    assert first_line.endswith("(SIGTERM)"), first_line
    as_json = json.loads(ws.fleetward("status", "--json", "--state-dir", str(state)).stdout)
    assert as_json["running"] is False and as_json["ready"] is False
    assert as_json["daemon"]["stopSignal"] == "SIGTERM"
    assert as_json["lastOperation"]["state"] == "SUCCESS"  # what it last did stays told

    # A daemon killed outright records nothing: its PID being gone says it.
    again = daemons.start(repo.root, state)
    again.wait_summary(lambda s: s["daemon"]["pid"] == again.pid, what="the new daemon's run")
    assert ws.fleetward("status", "--state-dir", str(state)).returncode == 0
    again.kill()
    killed = ws.fleetward("status", "--state-dir", str(state))
    assert killed.returncode == 1
    assert killed.stdout.startswith(
        f"Not running: the daemon (PID {again.pid}) is not running, and did not record a stop"
    ), killed.stdout


def _interrupted_write(path: Path, pid: int) -> Path:
    """The temp file a process killed while writing `path` leaves beside it."""
    temp = path.parent / f".{path.name}.tmp-{pid}-x1y2z3"
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_text('{"half": ')
    return temp


def test_the_next_start_sweeps_what_a_killed_daemon_was_writing_in_every_directory(
    ws: Workspace,
) -> None:
    work, _ = ws.repo()
    state = ws.path("state")
    args = ("daemon", "--once", "--source", str(work.root), "--state-dir", str(state))
    assert ws.fleetward(*args).returncode == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a PID no process has any more: the killed writer's
    status = state / "status"
    leftovers = [
        _interrupted_write(status / "summary.json", gone.pid),
        _interrupted_write(status / "plan.json", gone.pid),
        _interrupted_write(status / "objects" / "Asset" / "TRK-1001.json", gone.pid),
        _interrupted_write(status / "pending" / "0a1b2c.txt", gone.pid),
        _interrupted_write(state / "operations.json", gone.pid),
        _interrupted_write(state / "suspend.json", gone.pid),
    ]
    writing = _interrupted_write(status / "plan.txt", os.getpid())  # a live writer's

    done = ws.fleetward(*args)
    assert done.returncode == 0, done.stderr
    assert [p for p in leftovers if p.exists()] == []
    assert writing.exists()


def test_a_run_on_a_full_disk_still_reports_its_failure_in_the_summary(ws: Workspace) -> None:
    """Files over 16 KiB cannot be written (RLIMIT_FSIZE: EFBIG, as a full disk fails big
    writes first): the store write fails, plan.json too, yet summary.json tells both."""
    work, _ = ws.repo()
    state = ws.path("state")

    def small_files_only() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))

    done = subprocess.run(
        [sys.executable, "-m", "fleetward", "daemon", "--once", "--log-format", "json",
         "--source", str(work.root), "--state-dir", str(state)],
        check=False, cwd=ws.root, env=ws.env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, preexec_fn=small_files_only,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr

    summary = summary_of(state)
    assert summary["lastOperation"]["state"] == "FAILURE"
    assert "File too large" in json.dumps(summary["errors"]), summary["errors"]
    plan_json = str(state / "status" / "plan.json")
    assert [f for f in summary["statusFileErrors"] if f.startswith(plan_json)] == [
        f"{plan_json}: File too large (errno 27)"
    ]
    assert (state / "status" / "plan.txt").exists()  # what fits is written
    assert not list((state / "status").glob(".*.tmp-*"))  # a failed write leaves nothing

    shown = ws.fleetward("status", "--state-dir", str(state))
    assert shown.returncode == 1
    assert "FAILURE" in shown.stdout and "not written" in shown.stdout, shown.stdout
