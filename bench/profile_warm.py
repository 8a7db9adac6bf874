"""Profile the daemon's warm reconcile after a one-file commit, the way the daemon runs it.

    python bench/profile_warm.py [--assets 100000] [--workdir DIR] [--commits 3]
                                 [--seeded] [--top 25] [--sort cumulative|tottime]
                                 [--out warm.prof] [--no-profile]

In one process, like `fleetward daemon` at start-up: the daemon's own
`Daemon` object (its Reconciler, OperationLog, status writer, health, metrics;
no threads) reconciles a fresh copy of the generated repository into an empty
state directory (the cold apply; `--seeded` instead applies variant 1 in a
child process first, so the first run here is a no-op cold plan). Then
`--commits` one-file commits (one attribute of one asset in one fleet file),
each reconciled with `Daemon._reconcile`, print:

* the run's phases (fetch, load, desire, plan, apply) and what the daemon does
  after the run (health.record, operation counts, status files);
* the store writes: state.json (json.dumps vs. the rest: file write, fsync,
  backup link, rename) and operations.json;
* cyclic-GC pauses during the reconcile, by generation (gc.callbacks).

The last commit is reconciled under cProfile; the top `--top` functions by
`--sort` are printed and the raw stats written to `--out`.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_daemon as bd


class _GCTimer:
    """Cyclic-GC pauses by generation, from gc.callbacks."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {}
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.setdefault(info["generation"], []).append(time.perf_counter() - self._start)

    def take(self) -> dict[int, tuple[int, float]]:
        out = {g: (len(p), sum(p)) for g, p in sorted(self.pauses.items())}
        self.pauses = {}
        return out


class _WriteTimer:
    """Time AtomicJSONStorage.write per file, and json.dumps inside it."""

    def __init__(self) -> None:
        from fleetward.store import tinydb as tinydb_store

        self.t: dict[str, float] = {}
        self._dumps = 0.0
        original_write = tinydb_store.AtomicJSONStorage.write
        real_json = tinydb_store.json

        def dumps(*a: Any, **k: Any) -> str:
            s = time.perf_counter()
            try:
                return real_json.dumps(*a, **k)  # type: ignore[no-any-return]
            finally:
                self._dumps += time.perf_counter() - s

        tinydb_store.json = SimpleNamespace(  # type: ignore[assignment]
            dumps=dumps, loads=real_json.loads, JSONDecodeError=real_json.JSONDecodeError
        )
        timer = self

        def write(storage: Any, data: Any) -> None:
            timer._dumps = 0.0
            s = time.perf_counter()
            try:
                original_write(storage, data)
            finally:
                name = storage._path.name
                total = time.perf_counter() - s
                timer.t[f"{name} dumps"] = timer.t.get(f"{name} dumps", 0.0) + timer._dumps
                timer.t[f"{name} rest"] = timer.t.get(f"{name} rest", 0.0) + total - timer._dumps
                timer.t[f"{name} writes"] = timer.t.get(f"{name} writes", 0.0) + 1

        tinydb_store.AtomicJSONStorage.write = write  # type: ignore[method-assign]

    def take(self) -> dict[str, float]:
        out, self.t = self.t, {}
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fleetward-bench"
    )
    parser.add_argument("--commits", type=int, default=3, help="one-file commits (last profiled)")
    parser.add_argument("--seeded", action="store_true", help="seed variant 1 in a child first")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    parser.add_argument("--out", type=Path, help="raw cProfile stats (default: workdir)")
    parser.add_argument("--no-profile", action="store_true", help="no cProfile run")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    n = args.assets
    base = bd.base_repo(args.workdir, n, args.seed)
    root = args.workdir / f"profile-warm-{n}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    repo = bd.fresh_copy(base, root / "repo")
    state = root / "state"
    if args.seeded:
        seeded = bd._run_child(["seed", str(repo), str(state)])
        print(f"seeded variant 1 in a child process: {seeded['total_s']:.1f} s")

    from fleetward.daemon.config import DaemonConfig
    from fleetward.operations import Operation
    from fleetward.pipeline import now_iso
    from fleetward.service import build_daemon

    gct = _GCTimer()
    writes = _WriteTimer()
    daemon = build_daemon(DaemonConfig(source=str(repo), state_dir=str(state), interval=600.0))
    clock = bd._Clock()
    daemon.reconciler.run = clock.wrap("reconciler.run", daemon.reconciler.run)
    daemon.status.write = clock.wrap("status.write", daemon.status.write)
    daemon.operations.all = clock.wrap("operations.all", daemon.operations.all)
    daemon.health.record = clock.wrap("health.record", daemon.health.record)
    editor = bd.Editor(repo, n)

    def reconcile(label: str, prof: cProfile.Profile | None = None) -> None:
        clock.t.clear()
        gct.take()
        writes.take()
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        report = daemon._reconcile(Operation.new(label, now_iso()))
        if prof is not None:
            prof.disable()
        total = time.perf_counter() - t0
        run_s = clock.t.pop("reconciler.run", 0.0)
        op = report.operation
        print(
            f"{label}: {op.state.name} {dict(op.plan_summary or {})} in {total * 1000:.0f} ms"
            + (" (profiled)" if prof is not None else "")
        )
        print(
            "    phases: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in report.phases.items())
            + f" | run {run_s * 1000:.0f} ms"
        )
        print(
            f"    after the run {(total - run_s) * 1000:.0f} ms: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in clock.t.items())
        )
        w = writes.take()
        print(
            "    store writes: "
            + ", ".join(
                f"{k} {v:.0f}" if k.endswith("writes") else f"{k} {v * 1000:.0f} ms"
                for k, v in w.items()
            )
        )
        pauses = gct.take()
        print(
            "    GC pauses: "
            + (
                ", ".join(f"gen{g} ×{c} {s * 1000:.0f} ms" for g, (c, s) in pauses.items())
                or "none"
            )
        )

    reconcile("start-up (cold)")
    size = (state / "state.json").stat().st_size
    print(f"    state.json: {size / 1e6:.1f} MB")
    for i in range(args.commits):
        editor.edit()
        editor.commit()
        last = i == args.commits - 1 and not args.no_profile
        prof = cProfile.Profile() if last else None
        reconcile(f"commit {i + 1}", prof)
        if prof is not None:
            out = args.out or root / "warm.prof"
            prof.dump_stats(str(out))
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(args.sort).print_stats(args.top)
            text = buf.getvalue()
            start = text.find("   ncalls")
            print(f"\ncProfile of commit {i + 1}, top {args.top} by {args.sort} ({out}):")
            print(text[start:] if start >= 0 else text)
    st = bd.proc_status(__import__("os").getpid())
    print(
        json.dumps({"rss_mb": st["VmRSS"] / 1024, "hwm_mb": st["VmHWM"] / 1024}),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
