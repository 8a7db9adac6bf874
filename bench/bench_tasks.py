"""Tasks benchmark: validation and plan time for 50,000 tasks across 500 assets.

    python bench/bench_tasks.py [--tasks 50000] [--assets 500] [--per-file 1000] [--json]

Writes a synthetic manifest tree (a plain directory) with one Fleet of
`--assets` assets, a Field, three TaskTypes (one with a templateSchema, one with singleActiveTask), 20 Users,
a Workflow, and `--tasks` tasks in TaskBatch files of `--per-file` tasks each;
about a third of the tasks carry two template items (`data` checked against the
schema, a `dependsOn` between them). Then, in this process, it measures:

* floor — parsing every file with the fastest C safe loader available (ruamel's, or
  PyYAML's CSafeLoader), the bytes read beforehand;
* load — YAML + the TaskBatch schema (check 1), `fleetward.loading.load`;
* desire — expansion into Task objects and the cross-document checks;
* plan, empty store — every task a create; checks 2–5 and the per-item report;
* re-plan — the same revision against the store its first plan produces (all no-ops);
* the checks alone — `kinds.tasks.checks.run` over the re-plan's context.

Figures are printed as seconds, µs per task and ratios to the floor; no target is
asserted (bench/README.md sets none for tasks). The run takes well under a few minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from fleetward.desire import desire
from fleetward.kinds import PlanContext
from fleetward.kinds.tasks.checks import run as run_task_checks
from fleetward.loading import Locator, load
from fleetward.model import Plan, StoredObject, StoreMeta, StoreSnapshot
from fleetward.planning import PlanOptions, plan
from fleetward.source import open_snapshot
from fleetward.tuning import gc_paused

NOW = "2026-11-22T10:00:00Z"
STEP_ID = "2c79f1fe-716f-41bc-8ac0-d92abb7f1032"
STATUSES = ["open", "open", "open", "in-progress", "completed"]
PRIORITIES = ["Low", "Medium", "High", "Urgent"]

REFERENCES = """\
apiVersion: fleetward/v1
kind: Field
metadata: {name: permian}
spec: {xid: permian, name: Permian basin}
---
apiVersion: fleetward/v1
kind: TaskType
metadata: {name: inspection}
spec:
  xid: inspection
  name: Inspection
  templateSchema:
    type: object
    properties:
      check: {type: string, enum: [pressure, leak, corrosion, valves]}
      readingKw: {type: number, minimum: 0}
    required: [check]
---
apiVersion: fleetward/v1
kind: TaskType
metadata: {name: repair}
spec: {xid: repair, name: Repair}
---
apiVersion: fleetward/v1
kind: TaskType
metadata: {name: survey}
spec: {xid: survey, name: Survey, singleActiveTask: true}
---
apiVersion: fleetward/v1
kind: Workflow
metadata: {name: inspection}
spec:
  steps:
    - {id: STEP_ID, name: inspect, action: log, config: {message: inspected}}
""".replace("STEP_ID", STEP_ID)


def generate(root: Path, n_tasks: int, n_assets: int, per_file: int, seed: int = 1) -> int:
    """Write the tree under root/manifests; return its size in bytes."""
    manifests = root / "manifests"
    (manifests / "tasks").mkdir(parents=True)
    rng = random.Random(seed)
    assets = "".join(
        f"    - {{externalAssetId: WELL-{i:04d}, name: Well {i}, type: well}}\n"
        for i in range(n_assets)
    )
    users = "".join(
        f"---\napiVersion: fleetward/v1\nkind: User\nmetadata: {{name: user-{u:02d}}}\n"
        f"spec: {{userName: user-{u:02d}, email: user{u:02d}@example.com}}\n"
        for u in range(20)
    )
    fleet = (
        "apiVersion: fleetward/v1\nkind: Fleet\nmetadata: {name: wells}\n"
        f"spec:\n  assets:\n{assets}"
    )
    (manifests / "fleet.yaml").write_text(fleet)
    (manifests / "references.yaml").write_text(REFERENCES + users)
    size = len(fleet) + len(REFERENCES) + len(users)
    surveyed: set[int] = set()  # assets with an open survey (singleActiveTask: one each)
    for start in range(0, n_tasks, per_file):
        header = (
            "apiVersion: fleetward/v1\nkind: TaskBatch\n"
            f"metadata: {{name: batch-{start // per_file:04d}}}\nspec:\n  tasks:\n"
        )
        lines = [header]
        for i in range(start, min(start + per_file, n_tasks)):
            task_type = ("inspection", "repair", "survey")[i % 3]
            day = 1 + i % 28
            status = rng.choice(STATUSES)
            if task_type == "survey":
                status = "open" if i % n_assets not in surveyed else "completed"
                surveyed.add(i % n_assets)
            lines.append(
                f"    - xid: T-{i:07d}\n"
                "      field: {xid: permian}\n"
                f"      asset: {{xid: WELL-{i % n_assets:04d}, type: well}}\n"
                f"      taskType: {{xid: {task_type}}}\n"
                f"      assigneeIds: [{{userName: user-{rng.randrange(20):02d}}}]\n"
                f"      priority: {rng.choice(PRIORITIES)}\n"
                f"      startTime: 2026-12-{day:02d}T08:00:00Z\n"
                f"      duration: PT{rng.randint(1, 4)}H\n"
                f"      dueDate: 2026-12-{day:02d}\n"
                f"      status: {status}\n"
            )
            if task_type == "inspection":
                lines.append(
                    f"      workflowStepId: {STEP_ID}\n"
                    "      template:\n"
                    f"        - {{xid: T-{i:07d}-a, data: {{check: pressure, "
                    f"readingKw: {rng.randint(0, 90)}}}}}\n"
                    f"        - {{xid: T-{i:07d}-b, data: {{check: leak}}, "
                    f"dependsOn: {{xid: T-{i:07d}-a}}}}\n"
                )
        text = "".join(lines)
        size += len(text)
        (manifests / "tasks" / f"batch-{start // per_file:04d}.yaml").write_text(text)
    return size


def measure(root: Path, n_tasks: int) -> dict[str, Any]:
    files = sorted((root / "manifests").rglob("*.yaml"))
    texts = [f.read_bytes().decode() for f in files]
    yaml = YAML(typ="safe", pure=False)
    started = time.perf_counter()
    parsed = [list(yaml.load_all(t)) for t in texts]
    floor = time.perf_counter() - started
    del parsed
    try:  # PyYAML's C loader, when installed, is the faster floor
        import yaml as pyyaml

        started = time.perf_counter()
        parsed = [list(pyyaml.load_all(t, Loader=pyyaml.CSafeLoader)) for t in texts]
        floor = min(floor, time.perf_counter() - started)
        del parsed
    except (ImportError, AttributeError):
        pass

    out: dict[str, Any] = {"tasks": n_tasks, "files": len(files), "floor_s": floor}
    with gc_paused(), open_snapshot(str(root), "HEAD", "manifests", True) as snapshot:
        started = time.perf_counter()
        manifests = load(snapshot)
        out["load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        desired = desire(manifests.revision, manifests.documents(), Locator(snapshot))
        out["desire_s"] = time.perf_counter() - started
    with gc_paused():
        started = time.perf_counter()
        first = plan(desired, as_stored_empty(), NOW, PlanOptions())
        out["plan_empty_s"] = time.perf_counter() - started
        stored = applied(first)
        started = time.perf_counter()
        again = plan(desired, stored, NOW, PlanOptions())
        out["replan_s"] = time.perf_counter() - started
        context = PlanContext(desired.documents, desired.objects, stored.objects, {})
        started = time.perf_counter()
        problems = run_task_checks(context, "TaskBatch")
        out["checks_s"] = time.perf_counter() - started
    report = first.reports["TaskBatch"]
    out["report"] = report["message"]
    out["errors"] = len(first.errors) + len(again.errors) + len(problems)
    out["creates"] = first.summary()["create"]
    out["replan_changes"] = len(again.changes)
    return out


def applied(made: Plan) -> StoreSnapshot:
    """The store right after applying `made` (all creates) to an empty one, without TinyDB."""
    objects = {
        c.address: StoredObject.first(c.address, c.kind, c.after, made.revision.id, NOW)
        for c in made.changes
        if c.after is not None
    }
    return StoreSnapshot(StoreMeta("bench", 1, made.revision.id), objects)


def as_stored_empty() -> StoreSnapshot:
    return StoreSnapshot(StoreMeta(lineage=None, serial=0, last_applied_revision=None), {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--per-file", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetward-bench-tasks-") as tmp:
        root = Path(tmp)
        size = generate(root, args.tasks, args.assets, args.per_file)
        result = measure(root, args.tasks)
    result["bytes"] = size
    if result["errors"] or result["replan_changes"]:
        print(f"unexpected: {result}", file=sys.stderr)
        raise SystemExit(1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    n = args.tasks
    validate = result["load_s"] + result["desire_s"]
    print(
        f"{n:,} tasks across {args.assets:,} assets, {result['files']} files, "
        f"{size / 1e6:.1f} MB of YAML"
    )
    rows = [
        ("YAML floor (fastest C safe loader)", result["floor_s"]),
        ("load: YAML + schema (check 1)", result["load_s"]),
        ("desire: expand + cross-document", result["desire_s"]),
        ("validate = load + desire", validate),
        ("plan, empty store (checks 2-5, report)", result["plan_empty_s"]),
        ("re-plan, nothing changed", result["replan_s"]),
        ("task checks 2-5 alone", result["checks_s"]),
    ]
    for label, seconds in rows:
        print(
            f"  {label:<40} {seconds:7.2f} s  {seconds / n * 1e6:7.1f} µs/task  "
            f"{seconds / result['floor_s']:5.2f}x floor"
        )
    total = validate + result["plan_empty_s"]
    print(f"  cold validate + plan: {total:.2f} s ({total / result['floor_s']:.2f}x floor)")
    print(f"  report: {result['report']}")


if __name__ == "__main__":
    main()
