"""`apply` on a terminal asks first, and only 'yes' goes ahead."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def _run_on_tty(args: list[str], cwd: Path, answer: str | None) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout, answering the prompt
    (answer None: pressing Ctrl-C at it, which sends SIGINT)."""
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
                if answer is None:
                    _wait_until_reading_the_terminal(proc.pid)
                    proc.send_signal(signal.SIGINT)
                else:
                    os.write(primary, answer.encode() + b"\r")
                answered = True
        elif proc.poll() is not None:
            break
    os.close(primary)
    # NO_COLOR drops colours but not bold: strip every SGR sequence.
    return proc.wait(10), re.sub(r"\x1b\[[0-9;]*m", "", transcript.decode(errors="replace"))


def _wait_until_reading_the_terminal(pid: int) -> None:
    """Until the child sits in read(2) on its terminal: the prompt's text is written a
    moment before input() starts reading, and a Ctrl-C in between is not "at the
    prompt". Bounded by a number of looks, not by time."""
    read_syscall = {"x86_64": "0", "aarch64": "63"}.get(os.uname().machine)
    for _ in range(2000):
        try:
            syscall = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            return  # no /proc (or not allowed): send it as it is
        if not syscall or read_syscall is None or syscall[0] == read_syscall:
            return
        time.sleep(0.005)


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


def test_ctrl_c_at_the_prompt_cancels_the_apply(workdir: Path) -> None:
    assert _run_on_tty(["apply", "--no-git", "--auto-approve"], workdir, "")[0] == 0
    north = workdir / "manifests" / "fleets" / "north-yard.yaml"
    text = north.read_text()
    north.write_text(text.replace("model: FH16, year: 2022", "model: FH16 Aero, year: 2022"))
    code, text = _run_on_tty(["apply", "--no-git"], workdir, None)
    assert code == 130, text
    assert "Apply cancelled. Nothing was changed." in text
    assert "Aborted" not in text and "Traceback" not in text
    listed = subprocess.run(
        [sys.executable, "-m", "fleetward", "operations", "list", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    latest = json.loads(listed.stdout)["content"]["results"][0]
    assert latest["state"] == "CANCELLED"  # recorded as a "no", not lost
