"""Tables at a terminal: they fit its width, and NO_COLOR or --no-color leaves plain text.

`operations list`, `state history` and `tasks list` over a real state
directory whose records hold long values: a task id and a user name of 60+
characters, an operation message of 150 characters with no space to break at.
In-process (click's CliRunner), except colours: NO_COLOR, FORCE_COLOR and
--no-color run `python -m fleetward`, as a terminal's shell would.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import isolated_env, run_cli

from fleetward.cli.output import when

BUNDLED = Path(__file__).resolve().parent.parent / "manifests"
LONG_XID = "INSP-2026-47-" + "VERY-LONG-TASK-IDENTIFIER-" * 3
LONG_USER = "maintenance-coordinator-of-the-southern-depot-night-shift"
LONG_FIELD = "bogus_" + "x" * 150  # the failed apply's message names it
TABLES = (("operations", "list"), ("state", "history"), ("tasks", "list"))
SGR = "\x1b["  # the start of every colour or bold sequence


def fleetward(
    workdir: Path, env: dict[str, str], *args: str, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """The CLI in-process in `workdir`, or as `python -m fleetward` if `process`."""
    if not process:
        return run_cli(args, env=env, cwd=workdir)
    return subprocess.run(
        [sys.executable, "-m", "fleetward", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The bundled manifests applied (--no-git), a task with a long xid whose status a
    user with a long name set, and an apply that failed on a long field name."""
    root = tmp_path_factory.mktemp("tables")
    home = root / "home"
    home.mkdir()
    env = isolated_env(home)
    shutil.copytree(BUNDLED, root / "manifests")
    batch = root / "manifests" / "tasks" / "weekly-inspections.yaml"
    batch.write_text(
        batch.read_text()
        + f"""    - xid: {LONG_XID}
      field: {{xid: south-depot}}
      asset: {{xid: VAN-3001, type: van}}
      taskType: {{xid: repair-order}}
      dueDate: 2026-11-24
"""
    )
    assert fleetward(root, env, "apply", "--auto-approve", "--no-git").returncode == 0
    done = fleetward(root, env, "tasks", "set-status", LONG_XID, "in-progress", "--by", LONG_USER)
    assert done.returncode == 0, done.stderr
    fleet = root / "manifests" / "fleets" / "north-yard.yaml"
    original = fleet.read_text()
    fleet.write_text(original.replace("      type: truck\n", f"      {LONG_FIELD}: 1\n", 1))
    failed = fleetward(root, env, "apply", "--auto-approve", "--no-git")
    assert failed.returncode == 1 and LONG_FIELD in failed.stderr
    fleet.write_text(original)
    return root, env


@pytest.mark.parametrize("command", TABLES, ids=" ".join)
def test_tables_fit_80_columns(
    workdir: tuple[Path, dict[str, str]], command: tuple[str, ...]
) -> None:
    root, env = workdir
    done = fleetward(root, {**env, "COLUMNS": "80"}, *command)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 2
    too_long = [line for line in lines if len(line) > 80]
    assert not too_long, "\n".join(too_long)


def test_operations_list_shows_short_ids_and_wraps_the_message(
    workdir: tuple[Path, dict[str, str]],
) -> None:
    root, env = workdir
    done = fleetward(root, {**env, "COLUMNS": "80"}, "operations", "list")
    header, *rows = done.stdout.splitlines()
    assert header.split() == [
        "OPERATION", "STATE", "TRIGGER", "REVISION", "CREATED", "CHANGES", "MESSAGE"
    ]
    failure = next(i for i, row in enumerate(rows) if " FAILURE " in row)
    first = rows[failure].split()
    assert len(first[0]) == 8  # the id prefix `operations show` takes
    assert re.fullmatch(r"\d+[smhd]", first[4]) and first[5] == "ago", first  # "3s ago"
    # The message column alone goes on over the next lines, and carries it all.
    message_at = header.index("MESSAGE")
    end = next(
        (i for i in range(failure + 1, len(rows)) if rows[i][:message_at].strip()), len(rows)
    )
    text = "".join(row[message_at:].strip() for row in rows[failure:end])
    assert f'Unknownfield"{LONG_FIELD}"' in text.replace(" ", "")


def test_history_and_tasks_keep_ids_whole_where_room_allows(
    workdir: tuple[Path, dict[str, str]],
) -> None:
    root, env = workdir
    history = fleetward(root, {**env, "COLUMNS": "300"}, "state", "history").stdout
    assert f"set-status {LONG_XID}" in history
    tasks = fleetward(root, {**env, "COLUMNS": "300"}, "tasks", "list").stdout
    assert LONG_XID in tasks and LONG_USER in tasks
    narrow = fleetward(root, {**env, "COLUMNS": "80"}, "tasks", "list").stdout
    assert "INSP-2026-47-VAN-3001" in narrow  # ids are the last thing cut


@pytest.mark.parametrize(
    ("extra_env", "flags"),
    [({"NO_COLOR": "1"}, ()), ({}, ("--no-color",))],
    ids=["NO_COLOR", "--no-color"],
)
@pytest.mark.parametrize("command", TABLES, ids=" ".join)
def test_no_color_leaves_no_bold_either(
    workdir: tuple[Path, dict[str, str]],
    command: tuple[str, ...],
    extra_env: dict[str, str],
    flags: tuple[str, ...],
) -> None:
    root, env = workdir
    forced = {k: v for k, v in env.items() if k != "NO_COLOR"} | {"FORCE_COLOR": "1"}
    styled = fleetward(root, forced, *command, process=True)
    assert SGR in styled.stdout  # FORCE_COLOR styles a pipe: headers are bold
    plain = fleetward(root, forced | extra_env, *flags, *command, process=True)
    assert plain.returncode == 0, plain.stderr
    assert SGR not in plain.stdout
    assert plain.stdout.split()[0] in {"OPERATION", "SERIAL", "XID"}


NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        ("2026-11-22T11:59:15Z", "45s ago"),
        ("2026-11-22T11:47:59.500Z", "12m ago"),
        ("2026-11-22T09:00:00+00:00", "3h ago"),
        ("2026-11-13T12:00:00Z", "9d ago"),
        ("2026-11-22T15:00:00Z", "in 3h"),
        ("2026-11-24", "in 1d"),
        ("2025-01-03T08:00:00Z", "2025-01-03"),
        ("not a time", "not a time"),
        (None, "-"),
    ],
)
def test_times_are_compact(moment: str | None, shown: str) -> None:
    assert when(moment, NOW) == shown
