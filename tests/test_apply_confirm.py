"""`apply` on a terminal asks first, and only 'yes' goes ahead."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def _run_on_tty(args: list[str], cwd: Path, answer: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout, answering the prompt."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetward", *args],
        cwd=cwd,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    transcript = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break  # the child closed the terminal
            if not chunk:
                break
            transcript += chunk
            if not answered and b"Enter a value" in transcript:
                os.write(primary, answer.encode() + b"\r")
                answered = True
        elif proc.poll() is not None:
            break
    os.close(primary)
    # NO_COLOR drops colours but not bold: strip every SGR sequence.
    return proc.wait(10), re.sub(r"\x1b\[[0-9;]*m", "", transcript.decode(errors="replace"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(REPO_MANIFESTS, tmp_path / "manifests")
    return tmp_path


def test_yes_applies(workdir: Path) -> None:
    code, text = _run_on_tty(["apply", "--no-git"], workdir, "yes")
    assert "Only 'yes' will be accepted to approve." in text
    assert code == 0, text
    # Every bundled object (12 assets, a workflow, the task kinds, …) is created.
    created = re.search(
        r"Apply complete! Objects: (\d+) created, 0 updated, 0 stopped, 0 deleted\.", text
    )
    assert created is not None and int(created.group(1)) >= 13, text
    assert (workdir / ".fleetward" / "state.json").exists()


@pytest.mark.parametrize("answer", ["no", "y", "YES please", ""])
def test_anything_but_yes_cancels_and_writes_nothing(workdir: Path, answer: str) -> None:
    code, text = _run_on_tty(["apply", "--no-git"], workdir, answer)
    assert code == 1, text
    assert "Apply cancelled. Nothing was changed." in text
    assert not (workdir / ".fleetward" / "state.json").exists()
