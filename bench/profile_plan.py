"""Profile one cold plan (git source → load → desire → plan, empty store) with cProfile.

    python bench/profile_plan.py --assets 100000 [--workdir DIR] [--top 30] [--out plan.prof]
                                 [--no-gc] [--floor]

Prints the hottest functions by own time and by cumulative time; `--out` keeps
the raw stats (`python -m pstats FILE`, or snakeviz). `--no-gc` runs with the
cyclic garbage collector disabled, to see how much of the time is GC passes
over the growing heap (cProfile does not show GC time as a function).
`--floor` profiles the YAML floor (PyYAML CSafeLoader and ruamel safe+C) instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate as gen  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fleetward-bench"
    )
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args()

    repo = args.workdir / f"repo-{args.assets}-s{args.seed}"
    if not (repo / ".git").exists():
        gen.generate(repo, args.assets, args.seed, git=True)

    import fleetward.pipeline as pipeline
    from fleetward.loading import DocumentCache
    from fleetward.model import StoreMeta, StoreSnapshot
    from fleetward.planning import PlanOptions

    if args.floor:
        import yaml as pyyaml
        from ruamel.yaml import YAML

        texts = [p.read_text("utf-8") for p in sorted((repo / gen.MANIFEST_DIR).glob("*.yaml"))]
        ruamel = YAML(typ="safe", pure=False)

        def work() -> object:
            a = [list(pyyaml.load_all(t, Loader=pyyaml.CSafeLoader)) for t in texts]
            b = [list(ruamel.load_all(t)) for t in texts]
            return a, b
    else:
        options = pipeline.SourceOptions(source=str(repo), ref="HEAD", path=gen.MANIFEST_DIR)
        empty = StoreSnapshot(StoreMeta(None, 0, None), {})

        def work() -> object:
            desired = pipeline.resolve(options, DocumentCache())
            return pipeline.make_plan(desired, empty, PlanOptions())

    if args.no_gc:
        gc.disable()
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    result = work()
    profiler.disable()
    elapsed = time.perf_counter() - t0
    del result
    print(
        f"{'floor' if args.floor else 'cold plan'} at N={args.assets:,} under cProfile: {elapsed:.1f} s"
        f" (gc {'off' if args.no_gc else 'on'})"
    )
    if args.out:
        profiler.dump_stats(str(args.out))
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(key).print_stats(args.top)
        print(f"\n=== by {key} ===")
        print(buf.getvalue().split("\n", 6)[-1] if "ncalls" in buf.getvalue() else buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
