"""The state directory and Git: the default `./.fleetward` lives in the manifests' work tree.

fleetward makes it with a `.gitignore` of `*`, so `git add -A` never commits the
store; and it refuses a state directory whose files Git tracks, since a checkout
would rewind the store (serial 6 back to 2, applies and task statuses lost).
Real repositories, the real CLI, run from the repository's root with the defaults:
in-process (click's CliRunner), the daemon as `python -m fleetward`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import isolated_env, run_cli

FLEET = """\
apiVersion: fleetward/v1
kind: Fleet
metadata: {name: north-yard}
spec:
  assets:
    - {externalAssetId: TRK-1, name: Truck 1, type: truck}
    - {externalAssetId: TRK-2, name: Truck 2, type: truck}
"""


class Checkout:
    """A Git work tree with manifests/, the CLI run at its root (state in ./.fleetward)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "repo"
        self.env = isolated_env(root)
        self.root.mkdir()
        self.git("init", "-q", "-b", "main")
        (self.root / "manifests").mkdir()
        (self.root / "manifests" / "north.yaml").write_text(FLEET, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "v1")

    @property
    def state(self) -> Path:
        return self.root / ".fleetward"

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.root, env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def run(self, *args: str, process: bool = False) -> subprocess.CompletedProcess[str]:
        """The CLI in-process at the work tree's root, or as `python -m fleetward`."""
        if not process:
            return run_cli(args, env=self.env, cwd=self.root)
        return subprocess.run(
            [sys.executable, "-m", "fleetward", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def refused(self, *args: str) -> str:
        done = self.run(*args, process=args[0] == "daemon")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "Internal error" not in done.stderr
        return done.stderr


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path)


def test_the_state_directory_ignores_itself(checkout: Checkout) -> None:
    checkout.ok("apply", "--auto-approve")
    assert (checkout.state / "state.json").is_file()
    assert (checkout.state / ".gitignore").read_text().splitlines()[-1] == "*"

    checkout.git("add", "-A")
    assert checkout.git("status", "--porcelain") == ""  # nothing of the store was staged
    assert checkout.git("ls-files", "--", ".fleetward") == ""


def test_a_gitignore_someone_wrote_is_kept(checkout: Checkout) -> None:
    checkout.state.mkdir()
    (checkout.state / ".gitignore").write_text("state.json\n")
    checkout.ok("apply", "--auto-approve")
    assert (checkout.state / ".gitignore").read_text() == "state.json\n"


def test_a_state_directory_tracked_by_git_is_refused_and_left_alone(checkout: Checkout) -> None:
    """A store committed by an older version: every command that opens it refuses it."""
    checkout.ok("apply", "--auto-approve")
    (checkout.state / ".gitignore").unlink()  # as before fleetward wrote one
    checkout.git("add", "-A")
    checkout.git("commit", "-q", "-m", "oops: the store too")
    assert "state.json" in checkout.git("ls-files", "--", ".fleetward")
    files = {p.name: p.read_bytes() for p in checkout.state.iterdir() if p.is_file()}

    for command in (
        ("plan",),
        ("apply", "--auto-approve"),
        ("state", "show"),
        ("state", "history"),
        ("tasks", "list"),
        ("tasks", "set-status", "T-1", "completed"),
        ("daemon", "--once", "--listen", "127.0.0.1:0"),
    ):
        stderr = checkout.refused(*command)
        assert "The state directory .fleetward is tracked by Git" in stderr, (command, stderr)
        assert "state.json" in stderr and "git rm -r --cached .fleetward" in stderr

    assert {p.name: p.read_bytes() for p in checkout.state.iterdir() if p.is_file()} == files

    # Untracked as the error says (the files stay), the store works again, ignored.
    checkout.git("rm", "-r", "-q", "--cached", ".fleetward")
    checkout.git("commit", "-q", "-m", "untrack the store")
    shown = json.loads(checkout.ok("state", "show", "--json").stdout)
    assert shown["serial"] == 1
    checkout.ok("apply", "--auto-approve")
    assert (checkout.state / ".gitignore").is_file()
    checkout.git("add", "-A")
    assert checkout.git("ls-files", "--", ".fleetward") == ""


def test_the_tracked_check_is_one_git_call_per_open_store(
    checkout: Checkout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cheap: one `git ls-files` when a store is first used, none for later reads and writes;
    none at all outside a work tree."""
    import fleetward.store.directory as directory
    from fleetward.store import ChangeSet, TinyDBStore

    checkout.ok("apply", "--auto-approve")
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting(argv: list[str], **kw: object) -> object:
        calls.append(list(argv))
        return real_run(argv, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(directory.subprocess, "run", counting)
    store = TinyDBStore(checkout.state)
    for serial in range(1, 4):
        with store.lock(5.0):
            store.read()
            store.apply(
                ChangeSet(
                    expected_lineage=store.meta().lineage,
                    expected_serial=serial,
                    revision="r",
                    upserts=[],
                    deletes=[],
                    history_entry={},
                )
            )
        store.history()
    assert [argv[3:5] for argv in calls] == [["ls-files", "-z"]]

    calls.clear()
    outside = checkout.root.parent / "elsewhere"
    TinyDBStore(outside / "state").read()
    assert calls == []
