"""Hostile YAML: seconds per MB of loading one file, per shape, at two sizes.

    python bench/bench_hostile.py [--sizes 1,2] [--json]

Each shape is a manifest file built to hurt the loader (deep nesting, long
flat collections, many keys, aliases, long scalars, many documents, many
errors to locate). Each runs `fleetward.loading.load_file` in a fresh child
process (so a crash shows as a crash, and no run inherits another's heap), at
each size in MB; the report gives seconds per MB per size and the ratio of the
two, which stays near 1 when the time is linear in the size. Every shape must
end in documents or located problems: a child that dies or prints an internal
error is reported as such.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"  # --src: another checkout, to compare
HEAD = "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: a}\nspec:\n  assets:\n"


def _fill(unit: str, size: int, head: str = "", tail: str = "") -> str:
    return head + unit * max(1, (size - len(head) - len(tail)) // len(unit)) + tail


SHAPES: dict[str, Callable[[int], str]] = {
    # nesting: refused at the 65th level, wherever the text goes on
    "deep-flow-seq": lambda n: "a: " + "[" * (n // 2) + "]" * (n // 2),
    "deep-flow-map": lambda n: _fill("{a: ", n, "a: "),
    "deep-block-seq": lambda n: _fill("- ", n, "a:\n  ", "x\n"),
    "deep-complex-keys": lambda n: _fill("? ", n, "a:\n", "x\n"),
    "unclosed-flow": lambda n: _fill("[", n, "a: "),
    # repetition: read to the end
    "flat-flow-list": lambda n: _fill("a, ", n, "a: [", "a]\n"),
    "flat-block-list": lambda n: _fill("- a\n", n, "a:\n"),
    "many-keys": lambda n: "".join(f"k{i}: v\n" for i in range(n // 10)),
    "many-documents": lambda n: _fill("---\n", n),
    "many-directive-documents": lambda n: _fill("%YAML 1.2\n---\na: 1\n...\n", n),
    "many-anchors": lambda n: "".join(f"k{i}: &a{i} v\n" for i in range(n // 16)),
    "many-scalar-aliases": lambda n: _fill("*a, ", n, "a: [&a x, ", "x]\n"),
    "long-scalar-aliases": lambda n: _fill("*a, ", n, "a: &a " + "x" * 65_536 + "\nb: [", "x]\n"),
    "long-scalars": lambda n: _fill("  - " + "x" * 60_000 + "\n", n, "a:\n"),
    "comments": lambda n: _fill("# [[[[ {{{{ '\" \n", n, "a: 1\n"),
    "quoted-brackets": lambda n: _fill('"]]]]", ', n, "a: [", "x]\n"),
    # valid manifests with an error in every asset: the error-locating path
    "asset-errors": lambda n: _fill("    - {externalAssetId: x, colour: red}\n", n, HEAD),
    "duplicate-assets": lambda n: _fill("    - externalAssetId: X-1\n", n, HEAD),
}

CHILD = """
import json, sys, time
from fleetward.loading import load_file
from fleetward.manifest_syntax import Located as _Located
text = open(sys.argv[1], encoding="utf-8").read().encode()
started = time.perf_counter()
result = load_file(text)
elapsed = time.perf_counter() - started
problems = [r.problem.error for r in result if isinstance(r, _Located)]
print(json.dumps({"s": elapsed, "problems": len(problems), "first": problems[:1],
                  "documents": len(result) - len(problems)}))
"""


def run_shape(path: Path, timeout: float, src: Path) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PYTHONPATH": str(src)},
        )
    except subprocess.TimeoutExpired:
        return {"s": time.perf_counter() - started, "outcome": f"timeout after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"s": time.perf_counter() - started, "outcome": f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout)
    first = result["first"][0] if result["first"] else ""
    result["outcome"] = (
        f"{result['problems']} problem(s): {first}"
        if result["problems"]
        else f"{result['documents']} document(s)"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2", help="file sizes in MB (default 1,2)")
    parser.add_argument("--only", default="", help="comma-separated shape names")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fleetward-bench-hostile"))
    parser.add_argument("--src", type=Path, default=SRC, help="the fleetward sources to measure")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",")]
    shapes = [s for s in SHAPES if not args.only or s in args.only.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for shape in shapes:
        rows = []
        for mb in sizes:
            text = SHAPES[shape](int(mb * 1_000_000))
            path = args.workdir / f"{shape}-{mb:g}.yaml"
            path.write_text(text, encoding="utf-8")
            result = run_shape(path, args.timeout, args.src)
            actual_mb = len(text.encode()) / 1_000_000
            rows.append({"mb": round(actual_mb, 2), "s_per_mb": result["s"] / actual_mb, **result})
        report[shape] = rows
        if not args.json:
            cells = "  ".join(f"{r['mb']:5.2f} MB {r['s_per_mb']:7.3f} s/MB" for r in rows)
            ratio = rows[-1]["s_per_mb"] / rows[0]["s_per_mb"] if rows[0]["s_per_mb"] else 0
            print(f"{shape:20} {cells}  ratio {ratio:4.2f}  {rows[-1]['outcome'][:60]}", flush=True)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
