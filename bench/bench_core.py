"""Core benchmarks against the targets in bench/README.md, reported as ratios.

    python bench/bench_core.py [--sizes 10000,100000] [--scale-up] [--json] [--workdir DIR]

For each N it generates a synthetic Git repository (bench/generate.py, one
commit, Fleets of 1,000 assets per file) and measures, each in a fresh Python
process so no measurement inherits another's heap or caches:

* floor — parse every manifest file with the fastest YAML loader available:
  ruamel.yaml `YAML(typ="safe", pure=False)` (C parser) and, if importable,
  PyYAML's `CSafeLoader`; the faster is the floor. All file bytes are read and
  decoded before the clock starts, and the parsed documents are kept alive
  until it stops (the pipeline keeps them too).
* cold plan — `fleetward.pipeline.resolve` (git source → load → desire, with a
  fresh DocumentCache) + reading an empty TinyDB store + `make_plan`. Target
  ≤ 1.5 × floor.
* scaling — cold plan at N over cold plan at N/2 (or 2N over N with
  `--scale-up`). Target ≤ 2.1×.
* apply — `apply_plan` of the cold plan (all creates) into a fresh state dir
  (one atomic write, fsynced), against one `json.dump` of the same stored
  documents (`StoredObject.to_doc()`, read back from the store) to a file in
  the same directory, with the store's separators and `ensure_ascii=False`,
  then flush + fsync. Target ≤ 1.5×.
* peak memory — `ru_maxrss` (and /proc VmHWM) of the cold-plan process, read
  right after the plan is made (before apply). Target ≤ 400 MB at N = 100,000.

Small N (≤ 20,000) take the best of 2 runs; larger N run once. Times come from
`time.perf_counter`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate as gen  # noqa: E402

TARGET_PLAN_RATIO = 1.5
TARGET_SCALING = 2.1
TARGET_APPLY_RATIO = 1.5
TARGET_PEAK_MB = 400
PEAK_TARGET_N = 100_000
SMALL_N = 20_000  # at or below: best of 2


# -- child processes -------------------------------------------------------------


def _peak_mb() -> dict[str, float]:
    out = {"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def child_floor(repo: Path) -> dict[str, Any]:
    files = sorted((repo / gen.MANIFEST_DIR).glob("*.yaml"))
    raw = [f.read_bytes() for f in files]
    texts = [b.decode("utf-8") for b in raw]
    result: dict[str, Any] = {"files": len(files), "bytes": sum(map(len, raw))}

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=False)
    result["ruamel_c_parser"] = "CParser" in getattr(yaml.Parser, "__name__", "")
    t0 = time.perf_counter()
    kept = [list(yaml.load_all(t)) for t in texts]
    result["ruamel_safe_c_s"] = time.perf_counter() - t0
    del kept
    try:
        import yaml as pyyaml

        loader = pyyaml.CSafeLoader
    except (ImportError, AttributeError):
        loader = None
    if loader is not None:
        t0 = time.perf_counter()
        kept = [list(pyyaml.load_all(t, Loader=loader)) for t in texts]
        result["pyyaml_csafe_s"] = time.perf_counter() - t0
        del kept
    # For reference only (not the floor): the faster loader with the cyclic GC off, since
    # GC passes over the growing heap are a large, superlinear share of both parses.
    fastest = (
        (lambda t: list(pyyaml.load_all(t, Loader=loader)))
        if loader is not None and result["pyyaml_csafe_s"] < result["ruamel_safe_c_s"]
        else (lambda t: list(yaml.load_all(t)))
    )
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        kept = [fastest(t) for t in texts]
        result["fastest_gc_off_s"] = time.perf_counter() - t0
    finally:
        gc.enable()
    del kept
    return result


def child_plan(repo: Path, state_root: Path, do_apply: bool) -> dict[str, Any]:
    import fleetward.pipeline as pipeline
    from fleetward.applying import apply_plan
    from fleetward.loading import DocumentCache
    from fleetward.planning import PlanOptions
    from fleetward.store import TinyDBStore
    from fleetward.store import tinydb as tinydb_store

    phases: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    # Phase timings: wrap the names `resolve` looks up in its module (no behaviour change).
    pipeline.open_snapshot = timed("source", pipeline.open_snapshot)
    pipeline.load = timed("load", pipeline.load)
    pipeline.desire = timed("desire", pipeline.desire)

    state_dir = Path(tempfile.mkdtemp(prefix="state-", dir=state_root))
    options = pipeline.SourceOptions(source=str(repo), ref="HEAD", path=gen.MANIFEST_DIR)
    c0 = time.process_time()
    t0 = time.perf_counter()
    desired = pipeline.resolve(options, DocumentCache())
    t1 = time.perf_counter()
    stored = TinyDBStore(state_dir).read()
    t2 = time.perf_counter()
    plan = pipeline.make_plan(desired, stored, PlanOptions())
    t3 = time.perf_counter()
    c3 = time.process_time()
    result: dict[str, Any] = {
        "plan_s": t3 - t0,
        "plan_cpu_s": c3 - c0,
        "phases": {**phases, "store_read": t2 - t1, "plan": t3 - t2},
        "objects": len(desired.objects),
        "changes": len(plan.changes),
        **_peak_mb(),
    }
    if not do_apply:
        return result

    store = TinyDBStore(state_dir)
    apply_phases: dict[str, float] = {}
    # Attribute apply time to the store (TinyDB + write) and to the file write itself.
    tinydb_store.AtomicJSONStorage.write = timed("write", tinydb_store.AtomicJSONStorage.write)
    store.apply = timed("store_apply", store.apply)  # type: ignore[method-assign]
    with store.lock(30):
        t0 = time.perf_counter()
        applied = apply_plan(plan, store, pipeline.now_iso(), str(state_dir))
        t1 = time.perf_counter()
    apply_phases = {k: phases[k] for k in ("store_apply", "write") if k in phases}
    docs = [o.to_doc() for o in store.read().objects.values()]
    dump_path = state_dir / "dump.json"
    t2 = time.perf_counter()
    with open(dump_path, "w", encoding="utf-8") as fh:
        json.dump(docs, fh, separators=(",", ":"), ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    t3 = time.perf_counter()
    result.update(
        apply_s=t1 - t0,
        apply_phases=apply_phases,
        applied_creates=applied.counts.get("create", 0),
        stored_docs=len(docs),
        state_file_bytes=(state_dir / tinydb_store.STATE_FILE).stat().st_size,
        json_dump_s=t3 - t2,
        json_dump_bytes=dump_path.stat().st_size,
    )
    return result


def _run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--_child", *args],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- orchestration ---------------------------------------------------------------


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return min(runs, key=lambda r: r[key])


def bench_size(n: int, seed: int, workdir: Path, scale_up: bool) -> dict[str, Any]:
    repeats = 2 if n <= SMALL_N else 1
    repo = gen.cached(workdir, n, seed, _log)
    state_root = workdir / "states"
    state_root.mkdir(exist_ok=True)

    _log(f"  N={n:,}: YAML floor (x{repeats})")
    floors = [_run_child(["floor", str(repo)]) for _ in range(repeats)]
    floor = {
        "files": floors[0]["files"],
        "bytes": floors[0]["bytes"],
        "ruamel_c_parser": floors[0]["ruamel_c_parser"],
        "ruamel_safe_c_s": min(f["ruamel_safe_c_s"] for f in floors),
        "fastest_gc_off_s": min(f["fastest_gc_off_s"] for f in floors),
    }
    if "pyyaml_csafe_s" in floors[0]:
        floor["pyyaml_csafe_s"] = min(f["pyyaml_csafe_s"] for f in floors)
    loaders = {k: v for k, v in floor.items() if k in ("ruamel_safe_c_s", "pyyaml_csafe_s")}
    floor["loader"] = min(loaders, key=loaders.__getitem__)
    floor["floor_s"] = loaders[floor["loader"]]

    _log(f"  N={n:,}: cold plan + apply (x{repeats})")
    runs = [_run_child(["plan", str(repo), str(state_root), "--apply"]) for _ in range(repeats)]
    cold = _best(runs, "plan_s")
    apply = _best(runs, "apply_s")
    dump_s = min(r["json_dump_s"] for r in runs)

    other_n = 2 * n if scale_up else n // 2
    _log(f"  N={n:,}: cold plan at {other_n:,} for scaling (x{repeats})")
    other_repo = gen.cached(workdir, other_n, seed, _log)
    other = _best(
        [_run_child(["plan", str(other_repo), str(state_root)]) for _ in range(repeats)], "plan_s"
    )
    lo, hi = (cold, other) if scale_up else (other, cold)
    shutil.rmtree(state_root, ignore_errors=True)

    return {
        "n": n,
        "repeats": repeats,
        "floor": floor,
        "cold_plan": cold,
        "cold_plan_ratio": cold["plan_s"] / floor["floor_s"],
        "cold_plan_vs_ruamel": cold["plan_s"] / floor["ruamel_safe_c_s"],
        "scaling": {
            "from_n": n if scale_up else other_n,
            "to_n": other_n if scale_up else n,
            "from_s": lo["plan_s"],
            "to_s": hi["plan_s"],
            "ratio": hi["plan_s"] / lo["plan_s"],
        },
        "apply": {
            "apply_s": apply["apply_s"],
            "phases": apply["apply_phases"],
            "creates": apply["applied_creates"],
            "state_file_bytes": apply["state_file_bytes"],
            "json_dump_s": dump_s,
            "json_dump_bytes": apply["json_dump_bytes"],
            "json_dump_fsync": True,
            "ratio": apply["apply_s"] / dump_s,
        },
        "peak_mb": cold.get("vmhwm_mb", cold["ru_maxrss_mb"]),
        "ru_maxrss_mb": cold["ru_maxrss_mb"],
    }


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "versions": {
            n: ver(n)
            for n in (
                "fleetward",
                "ruamel.yaml",
                "ruamel.yaml.clib",
                "PyYAML",
                "pydantic",
                "tinydb",
                "GitPython",
            )
        },
    }


def _verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISS"


def render(info: dict[str, Any], results: list[dict[str, Any]]) -> str:
    v = info["versions"]
    lines = [
        f"fleetward bench_core — Python {info['python']}, {info['cpu_count']} CPUs "
        f"({info['cpus_usable']} usable), {info['platform']}",
        f"ruamel.yaml {v['ruamel.yaml']} (clib {v['ruamel.yaml.clib']}), PyYAML {v['PyYAML']}, "
        f"pydantic {v['pydantic']}, tinydb {v['tinydb']}, GitPython {v['GitPython']}",
        "",
    ]
    row = "  {:<34} {:>24}   {:<14} {}"
    for r in results:
        f, cp, ap, sc = r["floor"], r["cold_plan"], r["apply"], r["scaling"]
        ph = cp["phases"]
        lines.append(
            f"N = {r['n']:,} assets — {f['files']} files, {f['bytes'] / 1e6:.1f} MB YAML, git source"
            + (f"; best of {r['repeats']}" if r["repeats"] > 1 else "; 1 run")
        )
        lines.append(row.format("measure", "value", "target", "verdict"))
        alt = []
        if "pyyaml_csafe_s" in f:
            alt.append(f"PyYAML CSafeLoader {f['pyyaml_csafe_s']:.2f} s")
        alt.append(
            f"ruamel safe+C {f['ruamel_safe_c_s']:.2f} s"
            + ("" if f["ruamel_c_parser"] else " (NO C parser!)")
        )
        alt.append(f"fastest with GC off {f['fastest_gc_off_s']:.2f} s (reference only)")
        lines.append(row.format("YAML floor", f"{f['floor_s']:.2f} s", "", "; ".join(alt)))
        lines.append(
            row.format(
                "cold plan / floor",
                f"{cp['plan_s']:.2f} s = {r['cold_plan_ratio']:.2f}×",
                f"≤ {TARGET_PLAN_RATIO}×",
                _verdict(r["cold_plan_ratio"], TARGET_PLAN_RATIO)
                + f"  (vs ruamel alone {r['cold_plan_vs_ruamel']:.2f}×; CPU {cp['plan_cpu_s']:.2f} s)",
            )
        )
        lines.append(
            "      phases: "
            + ", ".join(
                f"{k} {ph[k]:.2f} s"
                for k in ("source", "load", "desire", "store_read", "plan")
                if k in ph
            )
        )
        lines.append(
            row.format(
                f"scaling {sc['from_n']:,} → {sc['to_n']:,}",
                f"{sc['from_s']:.2f} → {sc['to_s']:.2f} s = {sc['ratio']:.2f}×",
                f"≤ {TARGET_SCALING}×",
                _verdict(sc["ratio"], TARGET_SCALING),
            )
        )
        lines.append(
            row.format(
                f"apply {ap['creates']:,} creates / json.dump",
                f"{ap['apply_s']:.2f} / {ap['json_dump_s']:.2f} s = {ap['ratio']:.2f}×",
                f"≤ {TARGET_APPLY_RATIO}×",
                _verdict(ap["ratio"], TARGET_APPLY_RATIO),
            )
        )
        aph = ap["phases"]
        lines.append(
            "      apply: "
            + (
                f"store.apply {aph['store_apply']:.2f} s (of which file write {aph.get('write', 0):.2f} s), "
                if "store_apply" in aph
                else ""
            )
            + f"state.json {ap['state_file_bytes'] / 1e6:.1f} MB; json.dump {ap['json_dump_bytes'] / 1e6:.1f} MB"
            " (compact separators, ensure_ascii=False, flush + fsync)"
        )
        at_target = r["n"] == PEAK_TARGET_N
        lines.append(
            row.format(
                "peak memory, cold plan",
                f"{r['peak_mb']:.0f} MB",
                f"≤ {TARGET_PEAK_MB} MB" if at_target else f"(at {PEAK_TARGET_N:,})",
                _verdict(r["peak_mb"], TARGET_PEAK_MB) if at_target else "",
            )
        )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        mode, rest = argv[1], argv[2:]
        if mode == "floor":
            out = child_floor(Path(rest[0]))
        else:
            out = child_plan(Path(rest[0]), Path(rest[1]), "--apply" in rest)
        print(json.dumps(out))
        return 0
    parser = argparse.ArgumentParser(
        description="fleetward core benchmarks (targets: bench/README.md), as ratios"
    )
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated N (default 10000,100000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scale-up", action="store_true", help="scaling as N → 2N instead of N/2 → N"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--workdir", type=Path, help="keep generated repositories here (and reuse them)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetward-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    _log(f"bench_core: {info['cpu_count']} CPUs, Python {info['python']}, workdir {workdir}")
    try:
        results = [bench_size(n, args.seed, workdir, args.scale_up) for n in sizes]
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "targets": {
                        "cold_plan_ratio": TARGET_PLAN_RATIO,
                        "scaling": TARGET_SCALING,
                        "apply_ratio": TARGET_APPLY_RATIO,
                        "peak_mb_at_100k": TARGET_PEAK_MB,
                    },
                    "results": results,
                },
                indent=2,
            )
        )
    else:
        print(render(info, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
