"""The rollback pin, end to end: a real daemon stays at the pinned revision across new
commits, and moves to the head once `fleetward resume` lifts the pin.

The daemon runs as `python -m fleetward daemon`; runs are asked for over HTTP
(POST /v0/operations/) and awaited by their operation, never by time.
"""

from __future__ import annotations

import json
from typing import Any

from daemon_support import (  # noqa: F401  (pytest fixtures)
    DaemonProcess,
    Daemons,
    GitRepo,
    Workspace,
    assert_error_body,
    daemons_fixture,
    http,
    read_summary,
    ws_fixture,
)
from rollback_support import commit_version

TOKEN = "rollback-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def _post(daemon: DaemonProcess, path: str, body: dict[str, Any]) -> Any:
    return http("POST", daemon.url + path, body=json.dumps(body).encode(), headers=AUTH)


def _finished(daemon: DaemonProcess, op_id: str) -> dict[str, Any]:
    """Wait for operation `op_id` to end; its record."""

    def final() -> dict[str, Any] | None:
        reply = daemon.get(f"/v0/operations/{op_id}/")
        if reply.status != 200:
            return None
        op: dict[str, Any] = reply.json()["content"]
        return op if op["state"] in ("SUCCESS", "FAILURE", "CANCELLED", "TIMEOUT") else None

    return daemon.wait(final, timeout=60, what=f"operation {op_id} to end")


def _converge(daemon: DaemonProcess) -> dict[str, Any]:
    """Ask for a run (a dry-run-free operation of its own) and wait for it to end."""
    reply = _post(
        daemon, "/v0/operations/", {"operation_type": "CONVERGE", "arguments": {"timeout": 120}}
    )
    assert reply.status == 201, reply.text
    return _finished(daemon, reply.json()["content"]["operation_id"])


def _summary_when(daemon: DaemonProcess, applied: str, pinned: str | None) -> dict[str, Any]:
    """summary.json once a run wrote it with `applied` applied and `pinned` the pin (several
    runs may end in turn: the watch's and the one asked for)."""
    assert daemon.state_dir is not None
    state_dir = daemon.state_dir

    def written() -> dict[str, Any] | None:
        summary = read_summary(state_dir) or {}
        pin = (summary.get("pinned") or {}).get("revision")
        seen = (summary.get("applied") or {}).get("revision")
        return summary if (seen, pin) == (applied, pinned) else None

    return daemon.wait(written, timeout=60, what=f"a summary at {applied} pinned to {pinned}")


def _applied(daemon: DaemonProcess) -> str | None:
    """The revision the daemon's summary says is applied (None before its first run)."""
    assert daemon.state_dir is not None
    summary = read_summary(daemon.state_dir) or {}
    revision: str | None = (summary.get("applied") or {}).get("revision")
    return revision


def test_the_daemon_stays_pinned_across_a_new_commit_until_resume(
    ws: Workspace, daemons: Daemons
) -> None:
    repo = GitRepo(ws.path("repo"), ws.env)
    v1 = commit_version(repo, "v1")
    state = ws.path("state")
    daemon = daemons.start(repo.root, state, api_token=TOKEN)
    daemon.wait(lambda: _applied(daemon) == v1, 60, "v1 applied")
    v2 = commit_version(repo, "v2")
    assert _converge(daemon)["revision"] == v2

    # Over HTTP: errors first (nothing queued), then the rollback itself.
    assert_error_body(_post(daemon, "/v0/rollback", {"to": "99"}), 404)
    assert_error_body(_post(daemon, "/v0/rollback", {"to": "2"}), 409)
    assert_error_body(_post(daemon, "/v0/rollback", {"to": "x"}), 400)
    unauthorised = http("POST", daemon.url + "/v0/rollback", body=b'{"to": "1"}')
    assert_error_body(unauthorised, 401)
    reply = _post(daemon, "/v0/rollback", {"to": "1", "by": "ops"})
    assert reply.status == 202, reply.text
    queued = reply.json()["content"]
    assert queued["trigger"] == "rollback"
    done = _finished(daemon, queued["operation_id"])
    assert (done["state"], done["revision"]) == ("SUCCESS", v1), done
    assert done["arguments"]["rollbackTo"] == v1

    # A new commit: the daemon keeps reconciling v1.
    v3 = commit_version(repo, "v3")
    run = _converge(daemon)
    assert (run["state"], run["revision"]) == ("SUCCESS", v1), run
    summary = _summary_when(daemon, v1, v1)
    assert summary["pinned"]["by"] == "ops"
    ready = daemon.get("/readyz").json()
    assert ready["checks"]["pinned"]["revision"] == v1
    status = ws.fleetward("status", "--state-dir", str(state))
    assert f"Pinned to revision {v1[:12]}" in status.stdout, status.stdout + status.stderr

    # Resume lifts the pin and names the head; the next run applies it.
    resumed = ws.fleetward("resume", "--state-dir", str(state), "--source", str(repo.root))
    assert resumed.returncode == 0, resumed.stderr
    assert f"Next: revision {v3[:7]}" in resumed.stdout
    after = _converge(daemon)
    assert (after["state"], after["revision"]) == ("SUCCESS", v3), after
    _summary_when(daemon, v3, None)


def test_a_cli_rollback_beside_a_running_daemon_pins_it(ws: Workspace, daemons: Daemons) -> None:
    repo = GitRepo(ws.path("repo"), ws.env)
    v1 = commit_version(repo, "v1")
    state = ws.path("state")
    daemon = daemons.start(repo.root, state, api_token=TOKEN)
    daemon.wait(lambda: _applied(daemon) == v1, 60, "v1 applied")
    v2 = commit_version(repo, "v2")
    assert _converge(daemon)["revision"] == v2

    rolled = ws.fleetward(
        "rollback", "--to", v1[:10], "--auto-approve", "--state-dir", str(state),
        "--source", str(repo.root),
    )  # fmt: skip
    assert rolled.returncode == 0, rolled.stderr
    commit_version(repo, "v3")
    run = _converge(daemon)
    assert (run["state"], run["revision"]) == ("SUCCESS", v1), run
    _summary_when(daemon, v1, v1)
