"""`fleetward suspend|resume` and `fleetward operations create|cancel|set-state|approve`.

suspend/resume are files in the state directory (no daemon involved); the
operations commands speak HTTP to a running daemon, found through
`<state-dir>/status/summary.json` or --url. Every failure ends as
Error/Reason/Resolution and exit 1, never a traceback. Most cases run the
command in-process (click's runner: fast); the ones that matter end to end
run the installed command as a subprocess.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from daemon_support import (  # noqa: F401  (ws_fixture: a pytest fixture)
    DaemonProcess,
    Daemons,
    Workspace,
    module_daemon,
    ws_fixture,
)

from fleetward.cli import cli
from fleetward.errors import StoreError, UsageError
from fleetward.store.suspension import (
    SUSPEND_FILE,
    Suspension,
    clear_suspension,
    read_suspension,
    write_suspension,
)

TOKEN = "token-of-the-cli"
# No token, state dir or debug setting from the environment of whoever runs the tests.
CLEAN_ENV: dict[str, str | None] = {
    "FLEETWARD_API_TOKEN": None,
    "FLEETWARD_API_TOKEN_FILE": None,
    "FLEETWARD_STATE_DIR": None,
    "FLEETWARD_DEBUG": None,
    "NO_COLOR": "1",
}


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(
        cli, list(args), catch_exceptions=False
    )


def assert_rendered_error(result: Result, error: str) -> str:
    """Exit 1 and an Error/Reason/Resolution block naming `error`; the stderr text."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    text = result.stderr
    assert f"Error: {error}" in text, text
    assert "  Reason: " in text and "  Resolution: " in text, text
    assert "Traceback" not in result.output
    return text


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with module_daemon(tmp_path_factory.mktemp("cli"), api_token=TOKEN) as daemon:
        yield daemon


def state_of(daemon: DaemonProcess) -> str:
    assert daemon.state_dir is not None
    return str(daemon.state_dir)


def create_json(daemon: DaemonProcess, *args: str) -> dict[str, Any]:
    result = run(
        "operations",
        "create",
        "--state-dir",
        state_of(daemon),
        "--api-token",
        TOKEN,
        "--json",
        *args,
    )
    assert result.exit_code == 0, result.output
    op: dict[str, Any] = json.loads(result.stdout)["content"]
    return op


WINDOW = ("--window", "2030-01-01T22:00:00+01:00", "2030-01-02T04:00:00Z")


# -- suspend / resume: the file ----------------------------------------------------------------


def test_suspension_round_trips_through_its_file(tmp_path: Path) -> None:
    assert read_suspension(tmp_path) is None
    suspension = Suspension(by="alice", at="2030-01-01T00:00:00Z", reason="incident 42 — ✓")
    write_suspension(tmp_path, suspension)
    assert read_suspension(tmp_path) == suspension
    assert json.loads((tmp_path / SUSPEND_FILE).read_text()) == suspension.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == [SUSPEND_FILE]  # no temp file left
    assert clear_suspension(tmp_path) == suspension
    assert clear_suspension(tmp_path) is None
    assert read_suspension(tmp_path) is None


@pytest.mark.parametrize(
    "content", [b"{", b"[]", b'{"by": "a", "at": 1, "reason": ""}', b"\xff\xfe", b'{"by": "a"}']
)
def test_a_corrupt_suspension_file_is_a_located_store_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / SUSPEND_FILE).write_bytes(content)
    with pytest.raises(StoreError) as caught:
        read_suspension(tmp_path)
    assert caught.value.problems[0].location == str(tmp_path / SUSPEND_FILE)
    assert clear_suspension(tmp_path) is None  # resuming always works
    assert not (tmp_path / SUSPEND_FILE).exists()


def test_suspending_needs_an_existing_state_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        write_suspension(tmp_path / "missing", Suspension("a", "2030-01-01T00:00:00Z", ""))
    assert not (tmp_path / "missing").exists()


# -- suspend / resume: the commands ------------------------------------------------------------


def test_suspend_then_status_then_resume(ws: Workspace, tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "status").mkdir(parents=True)
    (state / "status" / "summary.json").write_text(json.dumps({"ready": True}))

    suspended = run("suspend", "--state-dir", str(state), "--reason", "incident 42", "--by", "bob")
    assert suspended.exit_code == 0, suspended.output
    assert "Applies suspended by bob" in suspended.stdout
    assert "writes nothing" in suspended.stdout and "fleetward resume" in suspended.stdout
    on_disk = read_suspension(state)
    assert on_disk is not None and (on_disk.by, on_disk.reason) == ("bob", "incident 42")

    status = ws.fleetward("status", "--state-dir", str(state))
    assert f"Suspended by bob since {on_disk.at}: incident 42" in status.stdout, status
    as_json = ws.fleetward("status", "--state-dir", str(state), "--json")
    assert json.loads(as_json.stdout)["suspension"] == on_disk.to_dict()

    resumed = run("resume", "--state-dir", str(state))
    assert resumed.exit_code == 0, resumed.output
    assert "Applies resumed (suspended by bob since" in resumed.stdout
    assert "next run applies" in resumed.stdout
    assert not (state / SUSPEND_FILE).exists()
    assert "Suspended" not in ws.fleetward("status", "--state-dir", str(state)).stdout

    again = run("resume", "--state-dir", str(state))
    assert again.exit_code == 0 and "were not suspended" in again.stdout


def test_suspend_defaults_to_the_user_name(tmp_path: Path) -> None:
    result = run("suspend", "--state-dir", str(tmp_path), env={"USER": "carol", "LOGNAME": "carol"})
    assert result.exit_code == 0, result.output
    found = read_suspension(tmp_path)
    assert found is not None and found.by == "carol" and found.reason == ""


def test_suspend_without_the_state_directory_is_an_error(tmp_path: Path) -> None:
    result = run("suspend", "--state-dir", str(tmp_path / "nowhere"))
    assert_rendered_error(result, "No state directory")
    assert not (tmp_path / "nowhere").exists()


def test_status_reports_a_corrupt_suspension_and_resume_clears_it(
    ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "summary.json").write_text(json.dumps({"ready": True}))
    (tmp_path / SUSPEND_FILE).write_text("{not json")
    status = ws.fleetward("status", "--state-dir", str(tmp_path))
    assert "Suspension unknown" in status.stdout and "Traceback" not in status.stderr
    assert run("resume", "--state-dir", str(tmp_path)).exit_code == 0
    assert not (tmp_path / SUSPEND_FILE).exists()


# -- operations create|cancel|set-state|approve: against the daemon -----------------------------


def test_create_with_a_window_and_a_selection_then_cancel_by_prefix(daemon: DaemonProcess) -> None:
    op = create_json(
        daemon,
        *WINDOW,
        "--kind",
        "Asset",
        "--name",
        "TRK-*",
        "--label",
        "class=heavy",
        "--attribute",
        "year=2022",
        "--dry-run",
        "--timeout",
        "10m",
    )
    assert (op["state"], op["schedule_type"]) == ("SCHEDULED", "WINDOW")
    assert op["schedule_args"] == {"start": "2030-01-01T21:00:00Z", "end": "2030-01-02T04:00:00Z"}
    query = op["operation_device_query"]
    assert (query["kinds"], query["names"]) == (["Asset"], ["TRK-*"])
    assert query["matchLabels"] == {"class": "heavy"} and query["attributes"] == {"year": 2022}
    assert op["arguments"]["dryRun"] is True and op["arguments"]["timeout"] == 600

    cancelled = run(
        "operations",
        "cancel",
        op["operation_id"][:13],
        "--reason",
        "wrong window",
        "--state-dir",
        state_of(daemon),
        env={"FLEETWARD_API_TOKEN": TOKEN},
    )
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Operation {op['operation_id']} is now CANCELLED (110)" in cancelled.stdout
    ended = daemon.operation(op["operation_id"])
    assert ended["state"] == "CANCELLED" and "wrong window" in ended["transitions"][-1]["message"]


def test_set_state_is_the_seeds_put(daemon: DaemonProcess, tmp_path: Path) -> None:
    op = create_json(daemon, *WINDOW)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    args = ("--state-dir", state_of(daemon), "--api-token-file", str(token_file), "--json")
    done = run("operations", "set-state", op["operation_id"], "failed", *args)
    assert done.exit_code == 0, done.output
    reply = json.loads(done.stdout)
    assert (reply["operationId"], reply["status"]) == (op["operation_id"], "FAILURE")

    refused = run("operations", "set-state", op["operation_id"], "TIMEOUT", *args[:-1])
    text = assert_rendered_error(refused, "")
    assert "FAILURE" in text  # the daemon's 409 says why


def test_approving_what_waits_for_no_approval_renders_the_daemons_409(
    daemon: DaemonProcess,
) -> None:
    op = create_json(daemon, *WINDOW)
    result = run(
        "operations",
        "approve",
        op["operation_id"],
        "--state-dir",
        state_of(daemon),
        "--api-token",
        TOKEN,
    )
    assert_rendered_error(result, f"Operation {op['operation_id']} is not waiting for approval")
    run(
        "operations",
        "cancel",
        op["operation_id"],
        "--state-dir",
        state_of(daemon),
        "--api-token",
        TOKEN,
    )


def test_a_wrong_token_is_an_error_and_changes_nothing(daemon: DaemonProcess) -> None:
    before = daemon.operations()
    result = run(
        "operations", "create", "--state-dir", state_of(daemon), "--api-token", "not-the-token"
    )
    assert_rendered_error(result, "Invalid API token")
    assert daemon.operations() == before


def test_an_invalid_request_renders_the_daemons_location(daemon: DaemonProcess) -> None:
    result = run(
        "operations",
        "create",
        "--state-dir",
        state_of(daemon),
        "--api-token",
        TOKEN,
        "--window",
        "2030-01-02T00:00:00Z",
        "2030-01-01T00:00:00Z",
    )
    text = assert_rendered_error(result, "The window ends before it starts")
    assert "--> body.schedule_args.end" in text


def test_the_installed_command_creates_and_prints_what_to_do_next(
    daemon: DaemonProcess, ws: Workspace
) -> None:
    done = ws.fleetward(
        "operations",
        "create",
        "--url",
        daemon.url,
        *WINDOW,
        env={"FLEETWARD_API_TOKEN": TOKEN},
    )
    assert done.returncode == 0, done.stderr
    assert "created: SCHEDULED (100), waiting for window" in done.stdout
    op_id = done.stdout.split()[1]
    assert f"fleetward operations cancel {op_id}" in done.stdout
    cancel = ws.fleetward(
        "operations", "cancel", op_id, "--url", daemon.url, env={"FLEETWARD_API_TOKEN": TOKEN}
    )
    assert cancel.returncode == 0, cancel.stderr


# -- operations: finding the daemon --------------------------------------------------------


def test_no_daemon_found_is_an_error(ws: Workspace, tmp_path: Path) -> None:
    done = ws.fleetward(
        "operations", "create", "--state-dir", str(tmp_path), env={"FLEETWARD_API_TOKEN": TOKEN}
    )
    assert done.returncode == 1
    assert "Error: No daemon found" in done.stderr, done.stderr
    assert "Reason: " in done.stderr and "Resolution: " in done.stderr
    assert "Traceback" not in done.stderr


def test_a_daemon_that_is_not_running_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "summary.json").write_text(
        json.dumps({"daemon": {"pid": 1, "listen": f"http://127.0.0.1:{port}"}})
    )
    result = run(
        "operations", "cancel", "0" * 8, "--state-dir", str(tmp_path), "--api-token", TOKEN
    )
    text = assert_rendered_error(result, f"Cannot reach the daemon at http://127.0.0.1:{port}")
    assert "connection refused" in text


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("operations", "create"), "No API token"),
        (
            ("operations", "create", "--api-token-file", "/nonexistent/token"),
            "Cannot read --api-token-file",
        ),
        (("operations", "create", "--api-token", "t", "--url", "127.0.0.1:9477"), "Invalid --url"),
    ],
)
def test_connection_settings_are_checked_before_any_request(
    tmp_path: Path, args: tuple[str, ...], error: str
) -> None:
    result = run(
        *args,
        "--state-dir",
        str(tmp_path),
        *(() if "--url" in args else ("--url", "http://127.0.0.1:9")),
    )
    assert_rendered_error(result, error)


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("suspend",),
        ("resume",),
        ("operations", "create"),
        ("operations", "cancel"),
        ("operations", "set-state"),
        ("operations", "approve"),
    ],
)
def test_help_teaches_with_examples(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout, result.stdout
    assert f"fleetward {' '.join(command)}" in result.stdout


def test_the_operations_group_help_names_every_command() -> None:
    text = run("operations", "--help").stdout
    for name in ("list", "show", "create", "cancel", "set-state", "approve"):
        assert name in text


def test_resume_without_the_state_directory_is_an_error(tmp_path: Path) -> None:
    result = run("resume", "--state-dir", str(tmp_path / "nowhere"))
    assert_rendered_error(result, "No state directory")
    assert "nothing to do" not in result.output
    assert not (tmp_path / "nowhere").exists()
