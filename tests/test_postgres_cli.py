"""The CLI on the PostgreSQL store: `plan`/`apply` with --store (and FLEETWARD_STORE, and
across the process boundary), saved plans refused when stale, and `store copy` between a
state directory and a database, both ways. A real server: tests/postgres_support.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from daemon_support import Workspace, summary_of, ws_fixture  # noqa: F401  (a fixture)
from postgres_support import Server

from fleetward.cli import cli
from fleetward.store import OutboxEntry, TinyDBStore, open_store
from fleetward.store.suspension import SUSPEND_FILE

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the bundled manifests, as the current directory."""
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={"NO_COLOR": "1", **(env or {})}).invoke(cli, list(args))


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _edit_north(workdir: Path) -> None:
    north = workdir / "manifests" / "fleets" / "north-yard.yaml"
    north.write_text(
        north.read_text().replace("model: FH16, year: 2022", "model: FH17, year: 2022")
    )


def test_plan_and_apply_with_store_keep_the_state_in_the_database(
    workdir: Path, pg_url: str
) -> None:
    applied = _run("apply", "--no-git", "--auto-approve", "--store", pg_url)
    assert applied.exit_code == 0, applied.output
    assert not (workdir / ".fleetward" / "state.json").exists(), "nothing went to --state-dir"
    store = open_store(pg_url)
    snapshot = store.read()
    assert snapshot.meta.serial == 1 and len(snapshot.objects) > 10
    assert len(store.operations.all()) == 1, "the apply recorded its operation there"

    plan = _run("plan", "--no-git", "--store", pg_url)
    assert plan.exit_code == 0 and "No changes" in plan.output, plan.output
    _edit_north(workdir)
    plan = _run("plan", "--no-git", "--detailed-exitcode", env={"FLEETWARD_STORE": pg_url})
    assert plan.exit_code == 2, plan.output
    assert "FH17" in plan.output
    applied = _run("apply", "--no-git", "--auto-approve", env={"FLEETWARD_STORE": pg_url})
    assert applied.exit_code == 0, applied.output
    assert store.meta().serial == 2
    shown = _json(_run("state", "show", "--json", "--store", pg_url))
    assert shown["serial"] == 2 and shown["lineage"] == snapshot.meta.lineage
    history = _json(_run("state", "history", "--json", "--store", pg_url))
    assert [h["serial"] for h in history] == [1, 2]
    listed = _json(_run("operations", "list", "--json", "--store", pg_url))
    assert listed["content"]["count"] == 2


def test_a_saved_plan_is_refused_once_the_database_moved(workdir: Path, pg_url: str) -> None:
    assert _run("apply", "--no-git", "--auto-approve", "--store", pg_url).exit_code == 0
    _edit_north(workdir)
    saved = _run("plan", "--no-git", "--store", pg_url, "--out", "plan.json")
    assert saved.exit_code == 0, saved.output
    other = _run("apply", "--no-git", "--auto-approve", "--store", pg_url)  # moves the serial
    assert other.exit_code == 0, other.output
    store = open_store(pg_url)
    before = store.read(), store.history()
    stale = _run("apply", "plan.json", "--store", pg_url)
    assert stale.exit_code == 1
    assert "Saved plan is stale" in stale.output
    assert "postgres@127.0.0.1" in stale.output and "Traceback" not in stale.output
    assert (store.read(), store.history()) == before
    assert store.operations.all()[-1].state.name == "FAILURE", "the refusal is recorded"


def test_the_store_flag_works_across_the_process_boundary(
    workdir: Path, pg_url: str, postgres: Server
) -> None:
    env = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "FLEETWARD_STORE": pg_url}
    if "PYTHONPATH" in os.environ:  # the fleetward under test, not an installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(
        [sys.executable, "-m", "fleetward", "apply", "--no-git", "--auto-approve"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert open_store(pg_url).meta().serial == 1
    wrong = pg_url.replace(postgres.password, "not-the-password")
    done = subprocess.run(
        [sys.executable, "-m", "fleetward", "plan", "--no-git", "--store", wrong],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr and "Resolution" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_store_copy_moves_a_state_directory_to_postgres_and_back(
    workdir: Path, pg_url: str
) -> None:
    assert _run("apply", "--no-git", "--auto-approve").exit_code == 0
    _edit_north(workdir)
    assert _run("apply", "--no-git", "--auto-approve").exit_code == 0
    source = TinyDBStore(workdir / ".fleetward")
    queued = OutboxEntry("event-1:hook", "hook", {"id": "event-1"}, "2026-01-01T00:00:00Z")
    source.outbox_add([queued])
    original = source.dump()
    assert original.meta.serial == 2 and len(original.operations) == 2

    copied = _run("store", "copy", "--from", ".fleetward", "--to", pg_url)
    assert copied.exit_code == 0, copied.output
    assert "serial 2" in copied.output and "2 operation(s)" in copied.output
    assert open_store(pg_url).dump() == original
    # The database carries on from the copied serial: a plan there shows no change.
    plan = _run("plan", "--no-git", "--detailed-exitcode", "--store", pg_url)
    assert plan.exit_code == 0 and "No changes" in plan.output, plan.output

    # A non-empty target is refused, and left as it was.
    again = _run("store", "copy", "--from", ".fleetward", "--to", pg_url)
    assert again.exit_code == 1 and "is not empty" in again.output and "--force" in again.output
    assert open_store(pg_url).dump() == original

    back = _run("store", "copy", "--from", pg_url, "--to", "back", "--json")
    report = _json(back)
    assert report["serial"] == 2 and report["operations"] == 2
    assert report["notifications"] == 1
    assert report["to"] == "back" and "@" in report["from"]
    assert TinyDBStore(workdir / "back").dump() == original
    assert json.loads((workdir / "back" / "state.json").read_text())["meta"]["1"]["serial"] == 2

    # --force replaces what the target holds.
    assert _run("apply", "--no-git", "--auto-approve", "--state-dir", "other").exit_code == 0
    forced = _run("store", "copy", "--from", "other", "--to", pg_url, "--force")
    assert forced.exit_code == 0, forced.output
    assert open_store(pg_url).dump() == TinyDBStore(workdir / "other").dump()


def test_store_copy_refuses_what_it_cannot_do_clearly(
    workdir: Path, pg_url: str, postgres: Server
) -> None:
    cases = [
        (["--from", "missing-dir", "--to", pg_url], "No store at missing-dir"),
        (["--from", pg_url, "--to", "target"], "No store at"),
        (["--from", ".", "--to", "."], "name the same store"),
        (["--from", "mysql://u:pw@db/x", "--to", pg_url], "mysql:// store is not supported"),
    ]
    for args, words in cases:
        result = _run("store", "copy", *args)
        assert result.exit_code == 1, result.output
        assert words in result.output and "Resolution" in result.output
        assert postgres.password not in result.output and "Traceback" not in result.output
    assert not (workdir / "target").exists()


def test_the_daemon_reconciles_into_the_store_its_config_names(
    ws: Workspace, pg_url: str, postgres: Server
) -> None:
    """`store:` in the config file (as --store and FLEETWARD_STORE): the objects go to the
    database, the status files to --state-dir."""
    repo, revision = ws.repo()
    state = ws.path("state")
    config = ws.path("fleetward.yaml")
    config.write_text(f"store: {pg_url}\nsource: {repo.root}\nstate-dir: {state}\n")
    done = ws.fleetward("daemon", "--once", "--config", str(config), "--log-format", "json")
    assert done.returncode == 0, done.stderr
    store = open_store(pg_url)
    assert store.meta().last_applied_revision == revision
    assert [op.state.name for op in store.operations.all()] == ["SUCCESS"]
    assert summary_of(state)["applied"]["revision"] == revision
    assert not (state / "state.json").exists() and not (state / "operations.json").exists()
    assert postgres.password not in done.stderr

    # A server that refuses the credentials: exit 1, the reason, no password.
    wrong = pg_url.replace(postgres.password, "not-the-password")
    done = ws.fleetward(
        "daemon",
        "--once",
        "--source",
        str(repo.root),
        "--state-dir",
        str(state),
        env={"FLEETWARD_STORE": wrong},
    )
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr + done.stdout
    assert "not-the-password" not in done.stderr + done.stdout


def test_suspend_status_and_resume_keep_the_suspension_in_the_database(
    workdir: Path, pg_url: str, postgres: Server
) -> None:
    """`suspend --store` writes the row every replica reads, not suspend.json; `status`
    and `resume` read and lift it there (with a suspend.json left in --state-dir)."""
    state = workdir / "state"
    (state / "status").mkdir(parents=True)
    (state / "status" / "summary.json").write_text(json.dumps({"ready": True}))
    suspended = _run(
        "suspend", "--state-dir", str(state), "--store", pg_url, "--reason", "freeze", "--by", "bob"
    )
    assert suspended.exit_code == 0, suspended.output
    assert "every daemon of this store holds" in suspended.stdout
    assert postgres.password not in suspended.stdout
    assert not (state / SUSPEND_FILE).exists(), "the database keeps it"
    kept = open_store(pg_url).suspension()
    assert kept is not None and (kept.by, kept.reason) == ("bob", "freeze")

    status = _run("status", "--state-dir", str(state), env={"FLEETWARD_STORE": pg_url})
    assert f"Suspended by bob since {kept.at}: freeze" in status.stdout, status.output
    as_json = _run("status", "--state-dir", str(state), "--store", pg_url, "--json")
    assert json.loads(as_json.stdout)["suspension"] == kept.to_dict()
    assert "Suspended" not in _run("status", "--state-dir", str(state)).stdout, "not the file's"

    # A suspend.json given with --state-dir only goes too.
    assert _run("suspend", "--state-dir", str(state), "--by", "carol").exit_code == 0
    resumed = _run("resume", "--state-dir", str(state), "--store", pg_url)
    assert resumed.exit_code == 0, resumed.output
    assert "Applies resumed (suspended by bob since" in resumed.stdout
    assert open_store(pg_url).suspension() is None and not (state / SUSPEND_FILE).exists()
    again = _run("resume", "--state-dir", str(state), "--store", pg_url)
    assert again.exit_code == 0 and "were not suspended" in again.stdout

    # A row that cannot be read: status says so, resume removes it.
    assert _run("suspend", "--state-dir", str(state), "--store", pg_url).exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE fleetward.suspension SET doc = '[1]'")
    status = _run("status", "--state-dir", str(state), "--store", pg_url)
    assert "Suspension unknown" in status.stdout and "is corrupt" in status.stdout
    assert _run("resume", "--state-dir", str(state), "--store", pg_url).exit_code == 0
    assert open_store(pg_url).suspension() is None
