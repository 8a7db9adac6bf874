"""The daemon's configuration: flags > FLEETWARD_* variables > config file > defaults.

Precedence is checked by its effects: which state directory a `--once` run
writes, and the interval it records in summary.json. Invalid files fail with
exit code 1, a located error and nothing written; SIGHUP reloads the file.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    Daemons,
    Workspace,
    assert_error_body,
    daemons_fixture,
    summary_of,
    ws_fixture,
)


def write_config(ws: Workspace, text: str, name: str = "fleetward.yaml") -> Path:
    path = ws.path(name)
    path.write_text(text)
    return path


def interval_of(state: Path) -> float:
    summary = summary_of(state)
    assert summary is not None, f"no summary.json in {state}"
    assert summary["lastOperation"]["state"] == "SUCCESS", summary
    interval: float = summary["daemon"]["interval"]
    return interval


def state_dirs(ws: Workspace) -> set[str]:
    return {p.name for p in ws.root.iterdir() if p.name.startswith("state")}


# -- where values come from ------------------------------------------------------------------------


def test_the_config_file_sets_options_by_their_flag_names(ws: Workspace) -> None:
    repo, first = ws.repo()
    config = write_config(
        ws,
        f"# the daemon's settings\n"
        f"source: {repo.root}\n"
        f"state-dir: {ws.path('state-file')}\n"
        "interval: 30s\n"
        "log-format: json\n"
        "once: true\n",
    )
    done = ws.fleetward("daemon", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert interval_of(ws.path("state-file")) == 30
    assert summary_of(ws.path("state-file"))["applied"]["revision"] == first
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert any(line["message"] == "reconcile" for line in lines)  # log-format: json


@pytest.mark.parametrize(
    ("env", "flags", "written", "interval"),
    [
        ({}, [], "state-file", 30),
        ({"FLEETWARD_STATE_DIR": "state-env", "FLEETWARD_INTERVAL": "45s"}, [], "state-env", 45),
        (
            {"FLEETWARD_STATE_DIR": "state-env", "FLEETWARD_INTERVAL": "45s"},
            ["--state-dir", "state-flag", "--interval", "2m"],
            "state-flag",
            120,
        ),
        ({}, ["--state-dir", "state-flag"], "state-flag", 30),
    ],
    ids=["file", "env-over-file", "flag-over-env", "flag-over-file"],
)
def test_flags_win_over_the_environment_which_wins_over_the_file(
    ws: Workspace, env: dict[str, str], flags: list[str], written: str, interval: float
) -> None:
    repo, _ = ws.repo()
    config = write_config(ws, f"source: {repo.root}\nstate-dir: state-file\ninterval: 30s\n")
    done = ws.fleetward("daemon", "--once", "--config", str(config), *flags, env=env)
    assert done.returncode == 0, done.stderr
    assert state_dirs(ws) == {written}
    assert interval_of(ws.path(written)) == interval


def test_the_config_file_can_be_named_by_fleetward_config(ws: Workspace) -> None:
    repo, _ = ws.repo()
    config = write_config(ws, f"source: {repo.root}\nstate-dir: state-from-env-file\n")
    done = ws.fleetward("daemon", "--once", env={"FLEETWARD_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert state_dirs(ws) == {"state-from-env-file"}


def test_with_no_arguments_the_daemon_reconciles_manifests_of_the_current_repository(
    ws: Workspace,
) -> None:
    repo, first = ws.repo()
    done = ws.fleetward("daemon", "--once", cwd=repo.root)
    assert done.returncode == 0, done.stderr
    summary = summary_of(repo.root / ".fleetward")
    assert summary["applied"]["revision"] == first
    assert summary["daemon"]["interval"] == 60
    assert summary["source"]["url"] == str(repo.root.resolve())
    assert (summary["source"]["ref"], summary["source"]["path"]) == ("HEAD", "manifests")


# -- invalid configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "at"),
    [
        ("intervall: 30s\n", ['Unknown field "intervall"', '"interval"'], "1:1"),
        (
            "state-dir: state-x\ninterval: soon\n",
            ["Invalid value for interval", "duration"],
            "2:11",
        ),
        ("interval: 500ms\n", ["at least 1s"], "1:11"),
        ("interval: true\n", ["duration"], "1:11"),
        ("listen: nowhere\n", ["HOST:PORT"], "1:9"),
        ("log-format: xml\n", ["log-format"], "1:13"),
        ("api-tokn: x\n", ['"api-token"'], "1:1"),
        ("interval: [30s\n", ["Invalid YAML"], "2:1"),
        ("- interval: 30s\n", ["not a mapping"], ""),
    ],
    ids=[
        "unknown-key",
        "bad-duration",
        "interval-too-short",
        "bool-duration",
        "bad-listen",
        "bad-log-format",
        "unknown-key-2",
        "bad-yaml",
        "not-a-mapping",
    ],
)
def test_an_invalid_config_file_exits_1_with_a_located_error_and_writes_nothing(
    ws: Workspace, text: str, expected: list[str], at: str
) -> None:
    repo, _ = ws.repo()
    config = write_config(ws, text, "bad.yaml")
    done = ws.fleetward(
        "daemon", "--once", "--config", str(config), "--source", str(repo.root), cwd=ws.root
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in expected:
        assert fragment in done.stderr, done.stderr
    if at:
        assert f"bad.yaml:{at}" in done.stderr, done.stderr
    assert state_dirs(ws) == set()
    assert not (ws.root / ".fleetward").exists()


def test_every_error_of_a_config_file_is_reported_at_once_in_file_order(ws: Workspace) -> None:
    """Unknown keys and bad values together, each at its line: one run shows them all."""
    repo, _ = ws.repo()
    config = write_config(
        ws,
        "state-dir: state-x\n"
        "log-format: xml\n"
        "intervall: 30s\n"
        "listen: nowhere\n"
        "api-tokn: x\n"
        "git-timeout: soon\n",
        "bad.yaml",
    )
    done = ws.fleetward(
        "daemon", "--once", "--config", str(config), "--source", str(repo.root), cwd=ws.root
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    located = [
        line.rsplit("bad.yaml:", 1)[1]
        for line in done.stderr.splitlines()
        if line.lstrip().startswith("-->")
    ]
    assert located == [
        "2:13",  # log-format: xml
        "3:1",  # intervall
        "4:9",  # listen: nowhere
        "5:1",  # api-tokn
        "6:14",  # git-timeout: soon
    ], done.stderr
    for fragment in (
        "Invalid value for log-format",
        'Unknown field "intervall"',
        "HOST:PORT",
        '"api-token"',
        "Invalid value for git-timeout",
        "5 errors; nothing was changed.",
    ):
        assert fragment in done.stderr, done.stderr
    assert state_dirs(ws) == set()


def test_a_missing_config_file_exits_1(ws: Workspace) -> None:
    done = ws.fleetward("daemon", "--once", "--config", str(ws.path("nowhere.yaml")))
    assert done.returncode == 1
    assert "Cannot read the config file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (ws.root / ".fleetward").exists()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--interval", "soon"], {}),
        ([], {"FLEETWARD_INTERVAL": "soon"}),
        (["--listen", "nowhere"], {}),
    ],
    ids=["flag", "env", "listen"],
)
def test_an_invalid_flag_or_variable_is_a_usage_error(
    ws: Workspace, args: list[str], env: dict[str, str]
) -> None:
    done = ws.fleetward("daemon", "--once", "--state-dir", "state-x", *args, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert state_dirs(ws) == set()


@pytest.mark.parametrize("interval", ["0s", "500ms"])
def test_a_poll_interval_under_1s_is_refused_on_the_command_line_too(
    ws: Workspace, interval: str
) -> None:
    """The config file refuses an interval under 1s; a flag must not get around that."""
    repo, _ = ws.repo()
    done = ws.fleetward(
        "daemon", "--once", "--source", str(repo.root), "--state-dir", "state-x",
        "--interval", interval,
    )  # fmt: skip
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr
    assert state_dirs(ws) == set()


# -- reloading -------------------------------------------------------------------------------------


def test_sighup_reloads_the_config_file(ws: Workspace, daemons: Daemons) -> None:
    repo, first = ws.repo()
    state = ws.path("state")
    config = write_config(ws, "api-token: old-token\ninterval: 60s\n")
    daemon = daemons.spawn(
        "--config", str(config), "--source", str(repo.root), "--state-dir", str(state),
        "--listen", "127.0.0.1:0", "--log-format", "json",
    )  # fmt: skip
    daemon.state_dir = state
    daemon.wait_started()
    daemon.wait_applied(first)
    assert daemon.request_run("old-token").status == 201
    assert_error_body(daemon.request_run("new-token"), 403)

    config.write_text("api-token: new-token\ninterval: 60s\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait(lambda: daemon.logged("configuration reloaded"), what="the reload")
    assert_error_body(daemon.request_run("old-token"), 403)
    created = daemon.request_run("new-token")
    assert created.status == 201, created.text
    assert daemon.wait_operation(created.json()["content"]["operation_id"])["state"] == "SUCCESS"

    # A broken file is not half-applied: the running configuration stays.
    config.write_text("api-token: newer-token\nintervall: 60s\n")
    daemon.signal(signal.SIGHUP)
    refused = daemon.wait(
        lambda: daemon.logged('configuration not reloaded: Unknown field "intervall"'),
        what="the reload to be refused",
    )
    assert "fleetward.yaml:2:1" in refused[0]["location"]
    assert daemon.request_run("new-token").status == 201
    assert_error_body(daemon.request_run("newer-token"), 403)

    # A secret read from a file is read again: rotating it takes a SIGHUP.
    secret_file = ws.path("webhook-secret")
    secret_file.write_text("first-secret\n")
    config.write_text(f"api-token: new-token\nwebhook-secret-file: {secret_file}\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait(lambda: len(daemon.logged("configuration reloaded")) >= 2, what="the 2nd reload")
    assert daemon.webhook("first-secret").status == 202
    secret_file.write_text("second-secret\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait(lambda: len(daemon.logged("configuration reloaded")) >= 3, what="the 3rd reload")
    assert_error_body(daemon.webhook("first-secret"), 401)
    assert daemon.webhook("second-secret").status == 202

    # Removing the token from the file disables the endpoint again.
    config.write_text("interval: 60s\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait(lambda: len(daemon.logged("configuration reloaded")) >= 4, what="the 4th reload")
    assert "disabled" in assert_error_body(daemon.request_run("new-token"), 403)["error"]
    daemon.alive()
    assert daemon.terminate() == 0


def test_sighup_applies_a_new_source_and_interval(ws: Workspace, daemons: Daemons) -> None:
    one, first = ws.repo("one")
    two, _ = ws.repo("two")
    other = two.set_model("FH16 Aero")
    state = ws.path("state")
    settings = f"state-dir: {state}\nlisten: 127.0.0.1:0\nlog-format: json\n"
    config = write_config(ws, settings + f"source: {one.root}\ninterval: 60s\n")
    daemon = daemons.spawn("--config", str(config))
    daemon.state_dir = state
    daemon.wait_started()
    daemon.wait_applied(first)

    config.write_text(settings + f"source: {two.root}\ninterval: 60s\n")
    daemon.signal(signal.SIGHUP)
    summary = daemon.wait_applied(other)
    assert summary["source"]["url"] == str(two.root)
    assert "reload" in summary["lastOperation"]["trigger"].split(",")
    # The watch follows the new repository.
    third = two.set_model("FH16 XL")
    daemon.wait_applied(third, timeout=5)

    # A shorter interval takes effect at once: polls start arriving.
    config.write_text(settings + f"source: {two.root}\ninterval: 1s\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait(
        lambda: any("poll" in o["trigger"].split(",") for o in daemon.operations()),
        timeout=10,
        what="a poll at the new interval",
    )

    # What cannot change while running is kept, with a warning.
    moved = settings.replace(str(state), str(ws.path("state-new")))
    config.write_text(moved + f"source: {two.root}\ninterval: 1s\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait(
        lambda: daemon.logged("state-dir changed in the configuration; it takes effect at the "
                              "next restart"),
        what="the state-dir warning",
    )  # fmt: skip
    assert not ws.path("state-new").exists()
    assert daemon.terminate() == 0


def test_a_secret_file_given_by_flag_or_env_beats_the_secret_written_in_the_config() -> None:
    """A secret and its -file twin are one setting, with the usual precedence."""
    from fleetward.daemon.config import DaemonConfig, merge

    from_file = {"webhook_secret": "old", "api_token": "file-token"}
    merged = merge({"webhook_secret_file": "/run/secrets/hook"}, from_file, DaemonConfig())
    assert merged.webhook_secret is None
    assert merged.webhook_secret_file == "/run/secrets/hook"
    assert merged.api_token == "file-token"  # the other pair is untouched


def test_the_mass_stop_floor_is_a_config_key_and_reaches_the_planner(ws: Workspace) -> None:
    """`min-stop-count` in the file sets the guards the daemon plans with; a negative is refused."""
    from fleetward.daemon.config import DaemonConfig, merge, read_config_file
    from fleetward.daemon.configured import run_settings
    from fleetward.errors import UsageError

    config = write_config(ws, "min-stop-count: 3\n")
    merged = merge({}, read_config_file(str(config)), DaemonConfig())
    assert merged.min_stop_count == 3
    assert run_settings(merged).guards.min_stop_count == 3
    assert DaemonConfig().min_stop_count == 10

    bad = write_config(ws, "interval: 30s\nmin-stop-count: -1\n", "bad.yaml")
    with pytest.raises(UsageError) as raised:
        read_config_file(str(bad))
    assert raised.value.problems[0].location == f"{bad}:2:17"
