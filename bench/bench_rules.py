"""Asset-rule benchmark: one rule over 100,000 streams producing 25,000 assets.

    python bench/bench_rules.py [--streams 100000] [--per-asset 4] [--json] [--workdir DIR]

Generates a plain-directory manifest tree: StreamSets of 1,000 streams, each
reading its CSV file (`S03-T00042Press`, … four measurements per asset), and
one AssetRule (Group site, Delimiter, Literal, Group asset of 5 digits, Group
measurement with strict value mappings) whose Asset output merges the four
streams of one asset. It measures, in this process:

* matching — `rule_outputs.evaluate` over every stream (match + render the
  outputs), reported per stream;
* cold plan — load (fresh DocumentCache) + desire (expansion, matching,
  merging) + plan against an empty store;
* warm re-plan, nothing changed — the same with the daemon's caches kept
  (DocumentCache, desire's expansions, the rule memo), against the store as
  the cold plan would leave it;
* warm re-plan after one stream is added to one CSV file — what the daemon
  does after such a commit; the plan must show exactly that stream, the asset
  it makes and the rule's progress.

Times come from `time.perf_counter`; runnable in well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleetward.desire import Expansions, desire
from fleetward.kinds import KindCaches
from fleetward.kinds.asset_rule import outputs as rule_outputs
from fleetward.loading import DocumentCache, Locator, load
from fleetward.model import Action, StoredObject, StoreMeta, StoreSnapshot
from fleetward.planning import plan
from fleetward.source import open_snapshot

PER_FILE = 1_000
MEASUREMENTS = ("Press", "Temp", "Level", "Flow")
NOW = "2026-01-01T00:00:00Z"

RULE = """\
apiVersion: fleetward/v1
kind: AssetRule
metadata:
  name: bench-tanks
spec:
  exampleStreamId: S00-T00000Press
  expressions:
    - field: Id
      specifications:
        - {type: Group, name: site, characterType: Alphanumeric}
        - {type: Delimiter, value: "-"}
        - {type: Literal, value: T}
        - {type: Group, name: asset, characterType: Digit, characterLength: 5}
        - type: Group
          name: measurement
          strictValueMappings: true
          valueMappings: {Press: Pressure, Temp: Temperature, Level: Level, Flow: Flow}
  outputs:
    - field: Asset
      value:
        id: "{site}-T{asset}"
        name: "Tank {asset}"
        assetTypeId: tank
        description: "Tank {asset} at site {site}"
        streamReferences:
          - {id: "{measurement}", streamId: "{streamId}"}
"""


def stream_id(index: int, per_asset: int) -> str:
    asset, measurement = divmod(index, per_asset)
    return f"S{asset % 50:02d}-T{asset:05d}{MEASUREMENTS[measurement]}"


def generate(root: Path, n_streams: int, per_asset: int) -> Path:
    manifests = root / "manifests"
    (manifests / "streams").mkdir(parents=True)
    (manifests / "rule.yaml").write_text(RULE)
    for f, first in enumerate(range(0, n_streams, PER_FILE)):
        name = f"set-{f:04d}"
        (manifests / "streams" / f"{name}.yaml").write_text(
            f"apiVersion: fleetward/v1\nkind: StreamSet\nmetadata:\n  name: {name}\n"
            f"spec:\n  csv: {name}.csv\n"
        )
        rows = ["id,name,metadata.unit"]
        for i in range(first, min(first + PER_FILE, n_streams)):
            sid = stream_id(i, per_asset)
            rows.append(f"{sid},{sid} value,unit-{i % per_asset}")
        (manifests / "streams" / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return root


class Daemonish:
    """The caches a daemon keeps across reconciles."""

    def __init__(self) -> None:
        self.documents = DocumentCache()
        self.expansions: Expansions = {}
        self.caches = KindCaches()

    def resolve(self, root: Path) -> Any:
        with open_snapshot(str(root), "HEAD", "manifests", True) as snapshot:
            manifests = load(snapshot, self.documents)
            self.documents.retain(f.blob_id for f in snapshot.files)
            return desire(
                manifests.revision,
                manifests.documents(),
                Locator(snapshot),
                self.expansions,
                caches=self.caches,
            )


def timed(fn: Any) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run(n_streams: int, per_asset: int, workdir: Path) -> dict[str, Any]:
    root = generate(workdir / "tree", n_streams, per_asset)
    empty = StoreSnapshot(StoreMeta(None, 0, None), {})

    # Matching alone, over the streams as the loader produces them.
    probe = Daemonish().resolve(root)
    rule = probe.objects["AssetRule/bench-tanks"]
    streams = [o.spec for o in probe.objects.values() if o.kind == "Stream"]
    compiled = rule_outputs.compile_outputs(rule.spec)
    match_s, results = timed(lambda: [rule_outputs.evaluate(compiled, s) for s in streams])
    matched = sum(1 for r in results if r is not None)
    del probe, results

    # Cold: fresh caches (the rule memo is one of them).
    daemon = Daemonish()
    cold_s, desired = timed(lambda: daemon.resolve(root))
    cold_plan_s, cold = timed(lambda: plan(desired, empty, NOW))
    assets = sum(1 for o in desired.objects.values() if o.kind == "Asset")
    # The store as applying the cold plan leaves it (derived status included).
    objects = {
        c.address: StoredObject.first(c.address, c.kind, c.after, "bench", NOW)
        for c in cold.changes
        if c.after is not None
    }
    store = StoreSnapshot(StoreMeta("bench", 1, "bench"), objects)

    warm_s, desired = timed(lambda: daemon.resolve(root))
    warm_plan_s, warm = timed(lambda: plan(desired, store, NOW))

    # One stream more, in the last CSV file: the first stream of a new asset.
    last_csv = max((root / "manifests" / "streams").glob("*.csv"))
    new_id = stream_id(n_streams, per_asset)
    last_csv.write_text(last_csv.read_text() + f"{new_id},{new_id} value,unit-0\n")
    added_s, desired = timed(lambda: daemon.resolve(root))
    added_plan_s, added = timed(lambda: plan(desired, store, NOW))
    changes = sorted((c.address, c.action.value) for c in added.changes)
    assert (f"Stream/{new_id}", Action.CREATE.value) in changes, changes
    assert len(changes) == 3, changes

    return {
        "streams": n_streams,
        "streamsMatched": matched,
        "assets": assets,
        "matchSeconds": match_s,
        "matchMicrosecondsPerStream": match_s / n_streams * 1e6,
        "coldResolveSeconds": cold_s,
        "coldPlanSeconds": cold_plan_s,
        "coldTotalSeconds": cold_s + cold_plan_s,
        "coldChanges": len(cold.changes),
        "warmNoChangeSeconds": warm_s + warm_plan_s,
        "warmNoChangeChanges": len(warm.changes),
        "warmAfterOneStreamSeconds": added_s + added_plan_s,
        "warmAfterOneStreamResolveSeconds": added_s,
        "warmAfterOneStreamPlanSeconds": added_plan_s,
        "warmAfterOneStreamChanges": changes,
        "warmRatio": (added_s + added_plan_s) / (cold_s + cold_plan_s),
    }


def render(r: dict[str, Any]) -> str:
    head = (
        f"asset rules: {r['streams']:,} streams → {r['streamsMatched']:,} matched → "
        f"{r['assets']:,} assets  (python {platform.python_version()})"
    )
    matching = (
        f"  matching (match + render)      {r['matchSeconds']:7.2f} s   "
        f"{r['matchMicrosecondsPerStream']:6.1f} µs per stream"
    )
    cold = (
        f"  cold plan (load+desire+plan)   {r['coldTotalSeconds']:7.2f} s   "
        f"(resolve {r['coldResolveSeconds']:.2f} s, plan {r['coldPlanSeconds']:.2f} s, "
        f"{r['coldChanges']:,} changes)"
    )
    unchanged = (
        f"  warm re-plan, no change        {r['warmNoChangeSeconds']:7.2f} s   "
        f"({r['warmNoChangeChanges']} changes)"
    )
    added = (
        f"  warm re-plan, 1 stream added   {r['warmAfterOneStreamSeconds']:7.2f} s   "
        f"({r['warmRatio']:.1%} of cold; resolve "
        f"{r['warmAfterOneStreamResolveSeconds']:.2f} s, "
        f"plan {r['warmAfterOneStreamPlanSeconds']:.2f} s)"
    )
    changes = "    changes: " + ", ".join(
        f"{a} {addr}" for addr, a in r["warmAfterOneStreamChanges"]
    )
    return f"{head}\n{matching}\n{cold}\n{unchanged}\n{added}\n{changes}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--per-asset", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--workdir", type=Path, help="keep the generated tree here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetward-bench-rules-"))
    try:
        result = run(args.streams, args.per_asset, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
