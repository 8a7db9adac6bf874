"""The manifest fuzzer's long run: the property of tests/test_fuzz_manifests.py, for a budget.

    python bench/fuzz_long.py [--minutes 25] [--timeout 10] [--out fuzz-findings] [--seed N]

Generates revisions with tests/fuzzing.py (every kind, mutated on the data and the
text) and runs each through load, desire and plan against an empty and a non-empty
store, until the time budget is spent. Each example runs under an alarm of
`--timeout` seconds: a hang is a finding like a crash. A C-level stall that the
alarm cannot interrupt is caught by faulthandler, which dumps every thread and ends
the process; the revision in flight is then in `<out>/in-flight/`.

Every finding is minimised by Hypothesis and written to `<out>/<n>-<error>/` (the
revision's files and the traceback); the run then goes on, skipping that failure
(same exception type at the same line), so one run can report several. At the end
it prints the number of examples run and one line per finding. Exit 1 if any.
"""

from __future__ import annotations

import argparse
import faulthandler
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzzing import Generated, check_revision, revisions
from hypothesis import HealthCheck, given, settings


class Hang(Exception):
    """One example ran past the alarm."""


class TimeUp(BaseException):
    """The budget is spent. Not an Exception: Hypothesis lets it through without shrinking."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("the example ran past its alarm")


def _key(exc: BaseException) -> tuple[str, str]:
    """A failure's identity: its type and the line it was raised at."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f"{Path(last.filename).name}:{last.lineno}" if last else "?"
    return type(exc).__name__, where


class Run:
    def __init__(self, out: Path, timeout: int, deadline: float) -> None:
        self.out = out
        self.timeout = timeout
        self.deadline = deadline
        self.examples = 0
        self.known: dict[tuple[str, str], Path] = {}
        self.last: tuple[Generated, BaseException] | None = None

    def target(self, revision: Generated) -> None:
        if time.monotonic() > self.deadline:
            raise TimeUp
        self.examples += 1
        flight = self.out / "in-flight"
        shutil.rmtree(flight, ignore_errors=True)
        _write(flight, revision)
        # A stall in C code (no bytecode runs, so no alarm) ends the process with a dump.
        faulthandler.dump_traceback_later(self.timeout * 3, exit=True)
        signal.alarm(self.timeout)
        try:
            check_revision(revision.files, revision.seed)
        except Exception as exc:
            if _key(exc) in self.known:
                return  # reported already: look for the next one
            self.last = (revision, exc)
            raise
        finally:
            signal.alarm(0)
            faulthandler.cancel_dump_traceback_later()

    def record(self) -> None:
        assert self.last is not None
        revision, exc = self.last
        key = _key(exc)
        folder = self.out / f"{len(self.known) + 1:02d}-{key[0]}-{key[1].replace(':', '-')}"
        shutil.rmtree(folder, ignore_errors=True)
        _write(folder, revision)
        trace = "".join(traceback.format_exception(exc))
        (folder / "traceback.txt").write_text(f"seed tree: {revision.seed}\n\n{trace}")
        self.known[key] = folder
        self.last = None


def _write(folder: Path, revision: Generated) -> None:
    for path, content in revision.files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--timeout", type=int, default=10, help="seconds per example")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGALRM, _alarm)
    started = time.monotonic()
    run = Run(args.out, args.timeout, started + args.minutes * 60)
    rounds = 0
    while time.monotonic() < run.deadline:
        rounds += 1
        test = settings(
            max_examples=10**9,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )(given(revision=revisions())(run.target))
        if args.seed is not None:
            test = __import__("hypothesis").seed(args.seed + rounds)(test)
        try:
            test()
        except TimeUp:
            break
        except Exception:
            if run.last is None:
                raise
            run.record()
            print(f"finding {len(run.known)}: {list(run.known)[-1]}", flush=True)
    shutil.rmtree(args.out / "in-flight", ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    print(f"{run.examples} examples in {minutes:.1f} min, {len(run.known)} finding(s)")
    for (name, where), folder in run.known.items():
        print(f"  {name} at {where}: {folder}")
    return 1 if run.known else 0


if __name__ == "__main__":
    sys.exit(main())
