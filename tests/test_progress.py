"""Progress on long work: the engine's phases, and the bar `validate`, `plan` and `apply` draw.

The engine tells a `Progress` of each phase (reading files, validating documents,
planning) and of the items it gets through. The CLI draws that on stderr only
when stderr is a terminal (a real pseudo-terminal here) and the output is not
--json; anywhere else it prints exactly what it printed before.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from support import isolated_env

from fleetward.pipeline import SourceOptions, make_plan, resolve
from fleetward.planning import PlanOptions
from fleetward.progress import Phase, Watch, counted
from fleetward.store import TinyDBStore

FLEETS = 3
ASSETS_PER_FLEET = 40
PHASES = [phase.value for phase in Phase]


def fleet(n: int) -> str:
    assets = "".join(
        f"    - {{externalAssetId: A-{n}-{i:03d}, type: truck}}\n" for i in range(ASSETS_PER_FLEET)
    )
    return (
        f"apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {{name: fleet-{n}}}\n"
        f"spec:\n  assets:\n{assets}"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A Git repository of FLEETS files, one Fleet each (two documents in the last one)."""
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    for n in range(FLEETS):
        text = fleet(n) + ("---\n" + fleet(FLEETS) if n == FLEETS - 1 else "")
        (root / "manifests" / f"fleet-{n}.yaml").write_text(text)
    env = isolated_env(tmp_path)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "fleets"]):
        subprocess.run(["git", "-C", str(root), *args], env=env, check=True)
    return root


class Recorder(Watch):
    """A Watch that writes down what it is told."""

    def __init__(self) -> None:
        self.phases: list[tuple[Phase, int]] = []
        self.done: dict[Phase, int] = {}

    def start(self, phase: Phase, total: int) -> None:
        self.phases.append((phase, total))
        self.done[phase] = 0

    def advance(self, n: int = 1) -> None:
        self.done[self.phases[-1][0]] += n


def test_the_engine_reports_each_phase_with_its_count(repo: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    desired = resolve(SourceOptions(source=str(repo)), watch=recorder)
    stored = TinyDBStore(tmp_path / "state").read()
    make_plan(desired, stored, PlanOptions(), watch=recorder)
    objects = (FLEETS + 1) * ASSETS_PER_FLEET
    assert recorder.phases == [
        (Phase.READING, FLEETS),
        (Phase.VALIDATING, FLEETS + 1),
        (Phase.PLANNING, objects),
    ]
    assert recorder.done == {
        Phase.READING: FLEETS,
        Phase.VALIDATING: FLEETS + 1,
        Phase.PLANNING: objects,
    }


def test_counted_advances_in_steps_and_by_the_rest() -> None:
    recorder = Recorder()
    recorder.start(Phase.PLANNING, 2500)
    steps: list[int] = []
    recorder.advance = steps.append  # type: ignore[method-assign]
    assert list(counted(range(2500), recorder, every=1000)) == list(range(2500))
    assert steps == [1000, 1000, 500]


# -- the terminal ----------------------------------------------------------------------------------


def run(repo: Path, state: Path, *args: str, tty: bool) -> tuple[int, bytes, bytes]:
    """`fleetward ARGS` with stdout a pipe and stderr a pseudo-terminal (or a pipe)."""
    env = isolated_env(repo.parent, {"TERM": "xterm-256color"})
    command = [sys.executable, "-m", "fleetward", *args, "--source", str(repo)]
    if args[0] != "validate":
        command += ["--state-dir", str(state)]
    if not tty:
        done = subprocess.run(
            command, capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=300
        )
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: every copy of the follower is closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, env=env
        ) as process:
            os.close(follower)
            stdout, _ = process.communicate(timeout=300)
    finally:
        reader.join(timeout=30)
        os.close(leader)
    return process.returncode, stdout, b"".join(chunks)


COMMANDS = [
    pytest.param(["validate"], Phase.VALIDATING, id="validate"),
    pytest.param(["plan"], Phase.PLANNING, id="plan"),
    pytest.param(["apply", "--auto-approve"], Phase.APPLYING, id="apply"),
]


@pytest.mark.parametrize(("args", "last"), COMMANDS)
def test_a_terminal_sees_the_phases_and_a_pipe_sees_nothing_more(
    repo: Path, tmp_path: Path, args: list[str], last: Phase
) -> None:
    code, piped_out, piped_err = run(repo, tmp_path / "piped", *args, tty=False)
    assert code == 0, piped_err
    assert piped_err == b""  # no bar, not even a blank line or a cursor code

    code, shown_out, shown_err = run(repo, tmp_path / "shown", *args, tty=True)
    assert code == 0, shown_err
    text = shown_err.decode(errors="replace")
    wanted = PHASES[: PHASES.index(last.value) + 1]
    at = [text.find(phase) for phase in wanted]
    assert all(i >= 0 for i in at) and at == sorted(at), text
    assert "Traceback" not in text
    # Standard output is the same, byte for byte, with the bar on stderr or without it.
    assert shown_out == piped_out


@pytest.mark.parametrize("args", [["validate", "--json"], ["plan", "--json"]])
def test_json_output_draws_no_bar_even_on_a_terminal(
    repo: Path, tmp_path: Path, args: list[str]
) -> None:
    code, _, shown_err = run(repo, tmp_path / "state", *args, tty=True)
    assert code == 0
    assert not any(phase.encode() in shown_err for phase in PHASES), shown_err
