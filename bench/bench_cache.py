"""The persistent cache, memory and scaling targets of issue 19, from one run.

    python bench/bench_cache.py [--n 100000] [--scaling 10000,100000,300000]
                                [--workdir DIR] [--json]

At N assets (bench/generate.py, Fleets of 1,000 per file), with the real CLI in
child processes (`python -m fleetward`, so each figure includes what a user
waits for: start-up, imports, the store read):

* warm plan — the store holds variant 1 (applied), the cache was filled by one
  `plan` at variant 1, then a one-file commit (variant 2). `plan --json` with
  the cache, against `plan --json --no-cache` of the same commit. Target: warm
  ≤ 5 % of cold.
* peak RSS of `plan --json` (cold and warm; `wait4`'s ru_maxrss of that child).
  Target ≤ 400 MB.
* warm apply of a 100-object change — a commit that changes one attribute of
  100 assets, then `apply --auto-approve` in a child that times the whole
  command and the TinyDB store's own `apply` (its write). Target: command ≤
  1.2 × the store's write.
* cold plan scaling — `bench_core.py`'s cold plan child (git source → load →
  desire → plan against an empty store, no cache) at each size of
  `--scaling`; each step's time ratio over the size ratio. Target ≤ 1.1.
* cold plan / YAML floor at N — `bench_core.py`'s floor child. Target ≤ 1.5×.

Every figure is one run (the machine is shared; compare ratios, not seconds).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_core
import generate as gen

TARGET_WARM_PLAN = 0.05
TARGET_WARM_APPLY = 1.2
TARGET_PEAK_MB = 400
TARGET_SCALING = 1.1
TARGET_FLOOR = 1.5
CHANGED_ASSETS = 100

APPLY_CHILD = """
import sys, time, json
t0 = time.perf_counter()
from fleetward.store import tinydb as store_module
spent = []
real = store_module.TinyDBStore.apply
def timed(self, *a, **k):
    t = time.perf_counter()
    try:
        return real(self, *a, **k)
    finally:
        spent.append(time.perf_counter() - t)
store_module.TinyDBStore.apply = timed
from fleetward.cli import cli
t1 = time.perf_counter()
try:
    cli.main(sys.argv[1:], prog_name="fleetward", standalone_mode=False)
finally:
    t2 = time.perf_counter()
    print(json.dumps({"command_s": t2 - t1, "with_imports_s": t2 - t0, "store_apply_s": sum(spent)}),
          file=sys.stderr)
"""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETWARD_")}
    env["NO_COLOR"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _cli(args: list[str], cwd: Path, out: Path | None = None) -> dict[str, Any]:
    """Run `python -m fleetward ARGS`; its wall time and peak RSS (this child only)."""
    started = time.perf_counter()
    with open(out or os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetward", *args],
            cwd=cwd,
            env=_env(),
            stdout=sink,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 2):
        raise RuntimeError(f"fleetward {' '.join(args)} exited {code}: {err[-2000:]}")
    return {"s": elapsed, "peak_mb": usage.ru_maxrss / 1024, "stderr": err}


def _commit(repo: Path, message: str) -> None:
    for args in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=_git_env())


def _git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }


def bench_cache(n: int, workdir: Path) -> dict[str, Any]:
    repo = workdir / f"cache-repo-{n}"
    state = workdir / f"cache-state-{n}"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    _log(f"  N={n:,}: generate, apply variant 1")
    gen.generate(repo, n, 0, git=True)
    where = ["--source", str(repo), "--path", gen.MANIFEST_DIR, "--state-dir", str(state)]
    first_apply = _cli(["apply", "--auto-approve", *where], repo)
    _log(f"  N={n:,}: fill the cache (plan at variant 1), one-file commit")
    fill = _cli(["plan", "--json", *where], repo)
    gen.edit_to_v2(repo, n, 0, git=True)
    _log(f"  N={n:,}: cold and warm plan --json")
    cold = _cli(["plan", "--json", "--no-cache", *where], repo, workdir / "cold.json")
    warm = _cli(["plan", "--json", *where], repo, workdir / "warm.json")
    same = _same_plan(workdir / "cold.json", workdir / "warm.json")

    _log(f"  N={n:,}: apply variant 2, then a {CHANGED_ASSETS}-object change")
    _cli(["apply", "--auto-approve", *where], repo)
    _change_assets_simple(repo, CHANGED_ASSETS)
    _commit(repo, f"{CHANGED_ASSETS} assets renamed")
    script = workdir / "apply_child.py"
    script.write_text(APPLY_CHILD)
    run = subprocess.run(
        [sys.executable, str(script), "apply", "--auto-approve", *where],
        cwd=repo,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    apply = json.loads(run.stderr.strip().splitlines()[-1])
    return {
        "n": n,
        "first_apply_s": first_apply["s"],
        "fill_plan_s": fill["s"],
        "cold_plan_s": cold["s"],
        "warm_plan_s": warm["s"],
        "warm_ratio": warm["s"] / cold["s"],
        "warm_same_plan": same,
        "cold_peak_mb": cold["peak_mb"],
        "warm_peak_mb": warm["peak_mb"],
        "apply": apply,
        "apply_ratio": apply["command_s"] / apply["store_apply_s"],
    }


def _change_assets_simple(repo: Path, count: int) -> None:
    """Rename `count` assets: the `name:` line after each of the first `count` ids, over
    the files in order (each a changed spec, one update each)."""
    files = sorted((repo / gen.MANIFEST_DIR).glob("*.yaml"))
    left = count
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i, line in enumerate(lines):
            if (
                left
                and line.lstrip().startswith("name:")
                and i
                and "externalAssetId" in lines[i - 1]
            ):
                indent = line[: len(line) - len(line.lstrip())]
                lines[i] = f"{indent}name: renamed-{left}\n"
                left -= 1
        path.write_text("".join(lines), encoding="utf-8")
        if not left:
            return
    if left:
        raise RuntimeError(f"found only {count - left} asset names to change")


def _same_plan(a: Path, b: Path) -> bool:
    one, two = json.loads(a.read_text()), json.loads(b.read_text())
    one.pop("createdAt", None)
    two.pop("createdAt", None)
    return bool(one == two)


def bench_scaling(sizes: list[int], workdir: Path) -> dict[str, Any]:
    state_root = workdir / "states"
    state_root.mkdir(exist_ok=True)
    points = []
    for size in sizes:
        repo = gen.cached(workdir, size, 0, _log)
        _log(f"  N={size:,}: cold plan (no cache)")
        points.append({"n": size, **bench_core._run_child(["plan", str(repo), str(state_root)])})
    _log(f"  N={sizes[-1]:,}: YAML floor")
    floors = {
        size: bench_core._run_child(["floor", str(gen.cached(workdir, size, 0, _log))])
        for size in sizes
        if size == 100_000 or size == sizes[-1]
    }
    steps = [
        {
            "from_n": lo["n"],
            "to_n": hi["n"],
            "time_ratio": hi["plan_s"] / lo["plan_s"],
            "vs_linear": (hi["plan_s"] / lo["plan_s"]) / (hi["n"] / lo["n"]),
        }
        for lo, hi in itertools.pairwise(points)
    ]
    floor_ratios = {}
    for size, floor in floors.items():
        point = next(p for p in points if p["n"] == size)
        best = min(floor.get("pyyaml_csafe_s", float("inf")), floor["ruamel_safe_c_s"])
        floor_ratios[size] = {
            "plan_s": point["plan_s"],
            "floor_s": best,
            "ratio": point["plan_s"] / best,
        }
    return {"points": points, "steps": steps, "floor": floor_ratios}


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def render(cache: dict[str, Any], scaling: dict[str, Any]) -> str:
    row = "  {:<46} {:>30}   {:<10} {}"
    n = cache["n"]
    lines = [f"bench_cache — N = {n:,} assets (one run each; ratios measured in this run)"]
    lines.append(row.format("measure", "value", "target", "verdict"))
    lines.append(
        row.format(
            "warm CLI plan after a one-file commit / cold",
            f"{cache['warm_plan_s']:.2f} / {cache['cold_plan_s']:.2f} s = {cache['warm_ratio']:.1%}",
            f"≤ {TARGET_WARM_PLAN:.0%}",
            _verdict(cache["warm_ratio"] <= TARGET_WARM_PLAN)
            + ("" if cache["warm_same_plan"] else "  (PLANS DIFFER!)"),
        )
    )
    a = cache["apply"]
    lines.append(
        row.format(
            f"warm CLI apply of {CHANGED_ASSETS} changes / store write",
            f"{a['command_s']:.2f} / {a['store_apply_s']:.2f} s = {cache['apply_ratio']:.2f}×",
            f"≤ {TARGET_WARM_APPLY}×",
            _verdict(cache["apply_ratio"] <= TARGET_WARM_APPLY)
            + f"  (with interpreter imports {a['with_imports_s']:.2f} s)",
        )
    )
    for label, key in (
        ("peak RSS plan --json, cold", "cold_peak_mb"),
        ("peak RSS plan --json, warm", "warm_peak_mb"),
    ):
        lines.append(
            row.format(
                label,
                f"{cache[key]:.0f} MB",
                f"≤ {TARGET_PEAK_MB} MB",
                _verdict(cache[key] <= TARGET_PEAK_MB),
            )
        )
    lines.append(
        f"      first apply {cache['first_apply_s']:.1f} s, cache-filling plan {cache['fill_plan_s']:.1f} s"
    )
    for step in scaling["steps"]:
        lines.append(
            row.format(
                f"cold plan {step['from_n']:,} → {step['to_n']:,}",
                f"×{step['time_ratio']:.2f} = {step['vs_linear']:.2f} × linear",
                f"≤ {TARGET_SCALING} ×",
                _verdict(step["vs_linear"] <= TARGET_SCALING),
            )
        )
    for point in scaling["points"]:
        ph = point["phases"]
        lines.append(
            f"      N={point['n']:,}: {point['plan_s']:.2f} s, peak {point.get('vmhwm_mb', point['ru_maxrss_mb']):.0f} MB; "
            + ", ".join(
                f"{k} {ph[k]:.2f}"
                for k in ("source", "load", "desire", "store_read", "plan")
                if k in ph
            )
        )
    for size, f in scaling["floor"].items():
        lines.append(
            row.format(
                f"cold plan / YAML floor, N={size:,}",
                f"{f['plan_s']:.2f} / {f['floor_s']:.2f} s = {f['ratio']:.2f}×",
                f"≤ {TARGET_FLOOR}×",
                _verdict(f["ratio"] <= TARGET_FLOOR),
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--scaling", default="10000,100000,300000")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetward-bench-cache-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.scaling.split(",") if s]
    try:
        cache = bench_cache(args.n, workdir)
        scaling = bench_scaling(sizes, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"cache": cache, "scaling": scaling}, indent=2, default=str))
    else:
        print(render(cache, scaling))
    return 0


if __name__ == "__main__":
    sys.exit(main())
