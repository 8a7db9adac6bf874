"""Crash safety: SIGKILL an apply at random moments; the store is always the old state or the new one.

DESIGN §3: every write is a temp file in the state directory, fsync, `os.replace`;
a crash at any instant leaves either the old or the new state, never a mix, and
leftover temp files must not break the next apply.

Setup (once): a plain directory of 10,000 assets in fleets of 1,000 is applied
(v1, serial 1), and a saved plan that changes every asset (v2) is made against
it. One unkilled `fleetward apply plan.json` measures how long the apply takes
and when its store write starts. Then each trial copies the pre-applied state
directory, starts the same apply as a subprocess and SIGKILLs it: most trials
at a seeded random moment spread over the whole apply, the rest at a random
moment inside the store write (timed from the temp file appearing). After
every kill the state file must parse, load through `TinyDBStore.read()`, and
equal the state before or the state after the apply (objects, serial, history),
and the next apply must succeed under the store lock the dead writer left behind,
with its temp files swept: the interrupted plan applied again (`apply_plan`)
when the kill left the old state, one more store write when it left the new one.

The size is chosen to keep the test near a minute on a 2-core machine while the
store write (a 5 MB state file) still takes a good share of each apply.
Reproduce a failure with CRASH_SEED=<seed printed in the failure>.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetward.applying import apply_plan
from fleetward.errors import LockTimeout
from fleetward.model import Plan, StoredObject, StoreSnapshot
from fleetward.rendering import plan_from_dict
from fleetward.store import ChangeSet, TinyDBStore
from fleetward.store.lock import exclusive_lock

FLEETS = 10
FLEET_SIZE = 1_000
SPREAD_TRIALS = 20  # kill moments spread over the whole apply
WRITE_TRIALS = 6  # kill moments inside the store write
SEED = int(os.environ.get("CRASH_SEED", "20261122"))
TMP_PREFIX = ".state.json.tmp-"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETWARD_")}
    env.update({"NO_COLOR": "1", "TERM": "dumb"})
    return env


def fleetward(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetward", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def write_repo(root: Path, version: int) -> None:
    """FLEETS files of FLEET_SIZE assets; `version` changes every asset's attributes."""
    manifests = root / "manifests"
    manifests.mkdir(parents=True)
    for f in range(FLEETS):
        lines = [
            "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n"
            f"  name: fleet-{f:03d}\n  labels: {{zone: z{f % 3}}}\nspec:\n  assets:\n"
        ]
        for a in range(FLEET_SIZE):
            i = f * FLEET_SIZE + a
            lines.append(
                f"    - externalAssetId: AST-{i:06d}\n"
                f"      name: asset {i}\n"
                f"      type: {'truck' if i % 3 else 'van'}\n"
                f"      attributes: {{model: M{version}, odometerKm: {i * version}, depot: d{i % 17}}}\n"
                f"      labels: {{class: c{i % 7}}}\n"
            )
        (manifests / f"fleet-{f:03d}.yaml").write_text("".join(lines))


# -- what a state is -------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What must be all-old or all-new: meta, every object's spec and state, the history length."""

    lineage: str | None
    serial: int
    revision: str | None
    history: int
    objects: frozenset[tuple[Any, ...]]

    def describe(self) -> str:
        return f"serial {self.serial}, {len(self.objects)} objects, {self.history} history entries"


def _object(o: StoredObject) -> tuple[Any, ...]:
    return (
        o.key,
        json.dumps(o.spec, sort_keys=True),
        json.dumps(o.status, sort_keys=True),
        o.state.value,
        o.spec_hash,
        o.generation,
        o.applied_revision,
    )


def fingerprint(state_dir: Path) -> Fingerprint:
    return read_state(state_dir)[0]


def read_state(state_dir: Path) -> tuple[Fingerprint, StoreSnapshot]:
    """Load the store both ways: as JSON, and through `TinyDBStore.read()`; or raise."""
    raw = (state_dir / "state.json").read_bytes()
    data = json.loads(raw)
    assert isinstance(data, dict)
    snapshot = TinyDBStore(state_dir).read()
    return Fingerprint(
        snapshot.meta.lineage,
        snapshot.meta.serial,
        snapshot.meta.last_applied_revision,
        len(
            data.get("history", {})
        ),  # TinyDB's table of applies, as TinyDBStore.history() reads it
        frozenset(_object(o) for o in snapshot.objects.values()),
    ), snapshot


def leftovers(state_dir: Path) -> list[str]:
    return sorted(p.name for p in state_dir.iterdir() if p.name.startswith(TMP_PREFIX))


# -- the pre-applied world -----------------------------------------------------------


@dataclass
class World:
    root: Path
    base: Path  # v1 applied: the state before
    plan_file: Path  # v1 → v2 against `base`
    plan: Plan
    before: Fingerprint
    after: Fingerprint
    duration: float  # one unkilled apply of plan_file, start to exit
    write_start: float  # seconds from start until its temp file appeared
    write_end: float  # seconds from start until it exited


def start_apply(plan_file: Path, state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetward",
                "apply",
                str(plan_file),
                "--state-dir",
                str(state_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
        )


def wait_for_temp_file(
    proc: subprocess.Popen[bytes], state_dir: Path, started: float
) -> float | None:
    """Seconds from `started` until a temp file appears in `state_dir` (None if the process ended first)."""
    while proc.poll() is None:
        with os.scandir(state_dir) as entries:
            if any(e.name.startswith(TMP_PREFIX) for e in entries):
                return time.monotonic() - started
        time.sleep(0.0005)
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("crash")
    write_repo(root / "v1", 1)
    write_repo(root / "v2", 2)
    base = root / "base"
    applied = fleetward(
        "apply",
        "--auto-approve",
        "--no-git",
        "--source",
        str(root / "v1"),
        "--state-dir",
        str(base),
        "--max-lines",
        "1",
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    plan_file = root / "plan-v2.json"
    planned = fleetward(
        "plan",
        "--no-git",
        "--source",
        str(root / "v2"),
        "--state-dir",
        str(base),
        "--out",
        str(plan_file),
        "--max-lines",
        "1",
    )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plan = plan_from_dict(json.loads(plan_file.read_bytes()), str(plan_file))
    assert len(plan.changes) == FLEETS * FLEET_SIZE
    before = fingerprint(base)
    assert before.serial == 1 and len(before.objects) == FLEETS * FLEET_SIZE
    assert not (base / "state.json.backup").exists()

    # One unkilled run: the state after, and the window to aim at.
    measured = root / "measured"
    shutil.copytree(base, measured)
    started = time.monotonic()
    proc = start_apply(plan_file, measured, root / "measured.log")
    write_start = wait_for_temp_file(proc, measured, started)
    proc.wait(timeout=120)
    duration = time.monotonic() - started
    assert proc.returncode == 0, (root / "measured.log").read_text()
    assert write_start is not None, "the apply wrote no temp file"
    after = fingerprint(measured)
    assert after.serial == 2 and after.history == 2 and after.objects != before.objects
    assert after.lineage == before.lineage
    assert not leftovers(measured)
    return World(root, base, plan_file, plan, before, after, duration, write_start, duration)


# -- the trials ------------------------------------------------------------------------
#
# Each trial's checks (load, compare, next apply, compare again) run in a forked
# worker process while the main process kills the next trial's apply: the two
# overlap on the two cores, which keeps the whole test near a minute.

_WORKER: dict[str, Any] = {}


def _init_worker(plan_file: str, before: Fingerprint, after: Fingerprint) -> None:
    _WORKER["plan"] = plan_from_dict(json.loads(Path(plan_file).read_bytes()), plan_file)
    _WORKER["before"] = before
    _WORKER["after"] = after


def check_after_kill(state_dir: str, where: str) -> str:
    """Everything the brief asks of the state a kill left; returns the outcome, or raises."""
    state = Path(state_dir)
    before: Fingerprint = _WORKER["before"]
    after: Fingerprint = _WORKER["after"]
    store = TinyDBStore(state)
    # Read under the lock the next apply takes (the dead writer's lock file is still there).
    with store.lock(5.0):
        # The state is whole: old or new, never a mix.
        try:
            found, snapshot = read_state(state)
        except Exception as exc:
            raise AssertionError(
                f"{where}: the store does not load after the kill: {exc!r}"
            ) from None
        if found == before:
            outcome = "before"
        elif found == after:
            outcome = "after"
        else:
            raise AssertionError(
                f"{where}: the store is neither the state before ({before.describe()}) "
                f"nor after ({after.describe()}): {found.describe()}"
            )
        backup = state / "state.json.backup"
        if backup.exists():  # the previous state, kept beside the new one: whole too
            assert json.loads(backup.read_bytes()), where
        left = leftovers(state)

        # The next apply succeeds, leftover temp files notwithstanding.
        if outcome == "before":  # the interrupted apply, again, to the end
            result = apply_plan(
                _WORKER["plan"], store, "2026-01-01T00:00:00Z", str(state), snapshot=snapshot
            )
            assert result.wrote, where
        else:  # the apply had finished: the next write goes through
            obj = snapshot.objects[min(snapshot.objects)]
            store.apply(
                ChangeSet(
                    expected_lineage=snapshot.meta.lineage,
                    expected_serial=snapshot.meta.serial,
                    revision="after-the-crash",
                    upserts=[dataclasses.replace(obj, updated_at="2026-01-01T00:00:00Z")],
                    deletes=[],
                    history_entry={"revision": "after-the-crash", "counts": {}},
                )
            )
    assert not leftovers(state), f"{where}: temp files survived the next apply: {leftovers(state)}"
    expected_meta = (2, after.revision) if outcome == "before" else (3, "after-the-crash")
    if left:  # the interesting case: compare every object (elsewhere the meta suffices)
        recovered = fingerprint(state)
        assert recovered.objects == after.objects, (
            f"{where}: the next apply did not reach the new state"
        )
        assert (recovered.serial, recovered.revision) == expected_meta, where
    else:
        meta = store.meta()
        assert (meta.serial, meta.last_applied_revision) == expected_meta, where
    shutil.rmtree(state)
    return outcome + (" (temp file left)" if left else "")


def kill_one(world: World, trial: int, in_write: bool, moment: float) -> tuple[str, str, bool]:
    """Start the apply on a copy of the state before and SIGKILL it `moment` seconds after its
    start (or, `in_write`, after its temp file appeared); (state dir, description, mid-write)."""
    state = world.root / f"trial-{trial:02d}"
    shutil.copytree(world.base, state)
    started = time.monotonic()
    proc = start_apply(world.plan_file, state, world.root / f"trial-{trial:02d}.log")
    if in_write:
        seen = wait_for_temp_file(proc, state, started)
        target = (seen if seen is not None else 0.0) + moment
        when = f"{moment:.3f}s into the store write"
    else:
        target = moment
        when = f"at {target:.3f}s of a {world.duration:.2f}s apply"
    remaining = target - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    mid_write = bool(leftovers(state))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    ended = (
        "killed"
        if proc.returncode == -signal.SIGKILL
        else f"exit {proc.returncode} before the kill"
    )
    return str(state), f"trial {trial} (CRASH_SEED={SEED}), killed {when}: {ended}", mid_write


def test_sigkill_during_apply_leaves_old_or_new_state(world: World) -> None:
    rng = random.Random(SEED)
    # Stratified: one random moment in each of SPREAD_TRIALS equal slices of the apply,
    # and in each of WRITE_TRIALS slices of the store write (+10%); then shuffled.
    write = (world.write_end - world.write_start) * 1.1
    schedule = [
        (False, (k + rng.random()) * world.duration / SPREAD_TRIALS) for k in range(SPREAD_TRIALS)
    ]
    schedule += [(True, (k + rng.random()) * write / WRITE_TRIALS) for k in range(WRITE_TRIALS)]
    rng.shuffle(schedule)
    fork = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=fork,
        initializer=_init_worker,
        initargs=(str(world.plan_file), world.before, world.after),
    ) as checks:
        pending = []
        for trial, (in_write, moment) in enumerate(schedule):
            state, where, mid_write = kill_one(world, trial, in_write, moment)
            pending.append((where, mid_write, checks.submit(check_after_kill, state, where)))
        for where, mid_write, future in pending:
            outcome = future.result(timeout=300)
            outcomes.append(outcome + (", killed mid-write" if mid_write else ""))
    summary = "; ".join(f"{outcomes.count(o)} × {o}" for o in sorted(set(outcomes)))
    print(
        f"\ncrash safety (CRASH_SEED={SEED}): apply {world.duration:.2f}s, store write from "
        f"{world.write_start:.2f}s; {len(outcomes)} kills: {summary}"
    )
    assert len(outcomes) == SPREAD_TRIALS + WRITE_TRIALS
    # Worth something only if some kills landed inside the store write.
    assert any("mid-write" in o for o in outcomes), outcomes


# -- temp files belong to the lock holder ------------------------------------------------


def test_waiting_for_the_lock_does_not_sweep_the_writers_temp_files(tmp_path: Path) -> None:
    """A second apply waiting for the lock must not delete the temp file of the write in
    progress (that made the first apply fail with 'No such file or directory')."""
    store = TinyDBStore(tmp_path)
    with store.lock(1.0):
        pass  # creates the directory and the lock file
    writing = tmp_path / f"{TMP_PREFIX}in-progress"
    holding = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with exclusive_lock(tmp_path / "state.lock", 1.0):
            writing.write_text("{}")
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        with pytest.raises(LockTimeout):
            with store.lock(0.3):
                pass
        assert writing.exists(), "a process waiting for the lock deleted the writer's temp file"
    finally:
        release.set()
        thread.join()
    # Once the lock is ours, an apply sweeps what a crashed writer left.
    with store.lock(1.0):
        store.apply(
            ChangeSet(
                expected_lineage=None,
                expected_serial=0,
                revision="r1",
                upserts=[],
                deletes=[],
                history_entry={"revision": "r1", "counts": {}},
            )
        )
    assert not writing.exists()
    assert TinyDBStore(tmp_path).read().meta.serial == 1
