"""The PostgreSQL store against TinyDB, at N = 100,000 stored objects, as ratios.

    python bench/bench_postgres.py [--n 100000] [--change 100] [--url URL] [--json]

Without --url it starts a throw-away PostgreSQL server (tests/postgres_support.py)
with fsync on, as TinyDB's store fsyncs every write. Measured, with
`time.perf_counter`, each the median of three runs (the cold apply runs once):

* change — apply a change set updating `--change` objects of a store holding N,
  through `Store.apply`, fenced on the serial. Two ways: *warm*, by the
  instance that wrote the store last (a daemon's), and *cold*, by a new instance
  (a CLI `apply`). Target: PostgreSQL ≥ 10× faster than TinyDB and ≤ 0.5 s.
* cold apply — N creates into an empty store (one apply). Target: PostgreSQL
  ≤ 2× TinyDB.

Each figure is printed next to its target with `ok` or `MISS`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fleetward.model import ObjectKey, ObjectState, StoredObject, spec_hash
from fleetward.store import ChangeSet, Store, TinyDBStore
from fleetward.store.postgres import PostgresStore

TARGET_SPEEDUP = 10.0
TARGET_CHANGE_SECONDS = 0.5
TARGET_COLD_RATIO = 2.0
RUNS = 3


def asset(n: int, model: str = "FH16") -> StoredObject:
    """An asset as a fleet manifest stores it (about 400 bytes of JSON)."""
    ident = f"TRK-{n:06d}"
    spec = {
        "externalAssetId": ident,
        "name": f"Truck {n}",
        "attributes": {"model": model, "year": 2020 + n % 5, "vin": f"YV2RT40A{n:09d}"},
        "labels": {"site": f"yard-{n % 40}", "team": f"team-{n % 7}", "tier": "standard"},
    }
    return StoredObject(
        key=ObjectKey(f"Asset/{ident}"),
        kind="Asset",
        spec=spec,
        status={"odometerKm": n * 3},
        owner=f"Fleet/fleet-{n // 1000}",
        state=ObjectState.ACTIVE,
        spec_hash=spec_hash(spec),
        generation=1,
        applied_revision="0" * 40,
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )


def change_set(store: Store, upserts: list[StoredObject], revision: str) -> ChangeSet:
    meta = store.meta()
    return ChangeSet(meta.lineage, meta.serial, revision, upserts, [], {"revision": revision}, None)


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def cold_apply(open_store: Callable[[], Store], objects: list[StoredObject]) -> tuple[Store, float]:
    """N creates into an empty store: the store and the seconds the apply took."""
    store = open_store()
    with store.lock(60):
        cs = change_set(store, objects, "r0")
        return store, timed(lambda: store.apply(cs))


def change(writer: Store, reopen: Callable[[], Store], n: int, size: int) -> dict[str, float]:
    """Median seconds of a `size`-object update, warm (`writer`) and cold (a new instance)."""
    warm, cold = [], []
    for run in range(RUNS):
        for label, store, out in (("w", writer, warm), ("c", reopen(), cold)):
            store.read()  # a daemon plans from its snapshot; the CLI reads before it plans
            model = f"{label}{run}"
            picked = [asset(i, model) for i in range(run, n, max(n // size, 1))][:size]
            with store.lock(60):
                cs = change_set(store, picked, f"r-{model}")
                out.append(timed(lambda s=store, c=cs: s.apply(c)))
    return {"warm": statistics.median(warm), "cold": statistics.median(cold)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--change", type=int, default=100)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: start a server)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    url = args.url
    if url is None:
        import postgres_support

        server = postgres_support.start_server(durable=True)
        url = server.url(server.new_database("bench"))
    objects = [asset(i) for i in range(args.n)]
    workdir = Path(tempfile.mkdtemp(prefix="fleetward-bench-pg-"))

    tiny, tiny_cold = cold_apply(lambda: TinyDBStore(workdir / "state"), objects)
    pg, pg_cold = cold_apply(lambda: PostgresStore(url), objects)
    tiny_change = change(tiny, lambda: TinyDBStore(workdir / "state"), args.n, args.change)
    pg_change = change(pg, lambda: PostgresStore(url), args.n, args.change)

    figures = {
        "n": args.n,
        "change": args.change,
        "coldApply": {"postgres": pg_cold, "tinydb": tiny_cold, "ratio": pg_cold / tiny_cold},
        "changeWarm": {
            "postgres": pg_change["warm"],
            "tinydb": tiny_change["warm"],
            "speedup": tiny_change["warm"] / pg_change["warm"],
        },
        "changeCold": {
            "postgres": pg_change["cold"],
            "tinydb": tiny_change["cold"],
            "speedup": tiny_change["cold"] / pg_change["cold"],
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    lines = [
        (
            "cold apply of N creates: PostgreSQL / TinyDB",
            f"{pg_cold:.2f} s / {tiny_cold:.2f} s = {pg_cold / tiny_cold:.2f}×",
            f"≤ {TARGET_COLD_RATIO:g}×",
            pg_cold / tiny_cold <= TARGET_COLD_RATIO,
        ),
    ]
    for way in ("warm", "cold"):
        pg_s, tiny_s = pg_change[way], tiny_change[way]
        lines += [
            (
                f"{args.change}-object change ({way}): TinyDB / PostgreSQL",
                f"{tiny_s:.3f} s / {pg_s:.3f} s = {tiny_s / pg_s:.1f}× faster",
                f"≥ {TARGET_SPEEDUP:g}×",
                tiny_s / pg_s >= TARGET_SPEEDUP,
            ),
            (
                f"{args.change}-object change ({way}) on PostgreSQL",
                f"{pg_s:.3f} s",
                f"≤ {TARGET_CHANGE_SECONDS:g} s",
                pg_s <= TARGET_CHANGE_SECONDS,
            ),
        ]
    print(f"N = {args.n:,} stored objects")
    for what, measured, target, met in lines:
        print(f"  {what:<52} {measured:<34} target {target:<8} {'ok' if met else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
