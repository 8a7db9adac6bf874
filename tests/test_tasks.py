"""Tasks in bulk, end to end: real Git repositories, the real CLI, a real state directory.

The CLI runs in-process (click's CliRunner); `tasks set-status` failing also runs as
`python -m fleetward`, its exit code and stderr crossing a process boundary.

A TaskBatch is reported per item in the bulk-task seed's response shape; runtime
status belongs to people (`tasks set-status`) and no plan reverts it; a task
removed from Git is soft-deleted; a batch of 5,000 tasks applies in one write.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support import isolated_env, run_cli

REFERENCES = """\
apiVersion: fleetward/v1
kind: Fleet
metadata: {name: tanks}
spec:
  assets:
{assets}
---
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
  singleActiveTask: true
  templateSchema: {type: object, properties: {kw: {type: number}}, required: [kw]}
---
apiVersion: fleetward/v1
kind: User
metadata: {name: jdoe}
spec: {userName: jdoe, email: jdoe@example.com}
"""


def references(n_assets: int) -> str:
    assets = "".join(
        f"    - {{externalAssetId: TANK-{i:04d}, type: tank}}\n" for i in range(n_assets)
    )
    return REFERENCES.replace("{assets}\n", assets)


def task(xid: str, asset: str, extra: str = "") -> str:
    return (
        f"    - xid: {xid}\n      field: {{xid: permian}}\n"
        f"      asset: {{xid: {asset}, type: tank}}\n      taskType: {{xid: inspection}}\n"
        f"      assigneeIds: {{userName: jdoe}}\n{extra}"
    )


def batch(name: str, tasks: Sequence[str]) -> str:
    return (
        f"apiVersion: fleetward/v1\nkind: TaskBatch\nmetadata: {{name: {name}}}\n"
        "spec:\n  tasks:\n" + "".join(tasks)
    )


class Repo:
    """A Git repository with manifests/, and the fleetward CLI run against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "repo"
        self.state = root / "state"
        self.env = isolated_env(root)
        self.path.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str | None]) -> str:
        for rel, text in files.items():
            target = self.path / "manifests" / rel
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "change")
        return self.git("rev-parse", "HEAD")

    def run(self, *args: str, process: bool = False) -> subprocess.CompletedProcess[str]:
        """The CLI in-process, or as `python -m fleetward` if `process`."""
        stateful = args[0] in ("plan", "apply") or args[:1] == ("tasks",)
        where = ["--state-dir", str(self.state)] if stateful else []
        source = ["--source", str(self.path)] if args[0] in ("plan", "apply", "validate") else []
        if not process:
            return run_cli([*args, *source, *where], env=self.env)
        return subprocess.run(
            [sys.executable, "-m", "fleetward", *args, *source, *where],
            capture_output=True,
            check=False,
            text=True,
            env=self.env,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done

    def objects(self) -> dict[str, dict[str, Any]]:
        raw = json.loads((self.state / "state.json").read_text())
        return {o["key"]: o for o in raw["objects"].values()}


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path)


def test_a_batch_of_5000_tasks_is_reported_per_item(repo: Repo) -> None:
    """5,000 tasks on 5,000 tanks: seven dangle, so nothing applies; fixed, all 5,000 do."""
    n = 5000
    tasks = [task(f"T-{i:05d}", f"TANK-{i:04d}") for i in range(n)]
    broken = {7, 99, 1000, 2500, 3333, 4998, 4999}
    bad = [
        task(f"T-{i:05d}", "TANK-MISSING") if i in broken else line for i, line in enumerate(tasks)
    ]
    repo.commit({"refs.yaml": references(n), "tasks/bulk.yaml": batch("bulk", bad)})

    failed = repo.run("apply", "--auto-approve", "--json")
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)
    assert report["success"] is False
    # Nothing was written, so no item was processed: the seven that failed their check
    # say why, the others that the apply was refused (none "got created").
    assert report["message"] == "Processed 0 items, Failed to process 5000 items"
    assert report["output"]["processedItems"] == []
    unprocessed = report["output"]["unProcessedItems"]
    failing, refused = unprocessed[: len(broken)], unprocessed[len(broken) :]
    assert [u["record"]["xid"] for u in failing] == [f"T-{i:05d}" for i in sorted(broken)]
    assert all(
        u["message"] == "ValidationError : asset with xid 'TANK-MISSING' not found in data base"
        for u in failing
    )
    assert len(refused) == n - len(broken)
    assert {u["message"] for u in refused} == {
        "Item not processed: the apply was refused "
        "(ValidationError: asset with xid 'TANK-MISSING' not found in data base)"
    }
    assert len(report["errors"]) == 7
    assert {e["location"].split(":")[0] for e in report["errors"]} == {"manifests/tasks/bulk.yaml"}
    assert not (repo.state / "state.json").exists(), "a failed revision wrote the store"

    repo.commit({"tasks/bulk.yaml": batch("bulk", tasks)})
    done = repo.ok("apply", "--auto-approve", "--json")
    report = json.loads(done.stdout)
    assert report["success"] is True
    assert report["message"] == "Processed 5000 items, Failed to process 0 items"
    assert len(report["output"]["processedItems"]) == n
    assert report["output"]["unProcessedItems"] == []
    assert {p["message"] for p in report["output"]["processedItems"]} == {"Item got created"}
    first = report["output"]["processedItems"][0]["record"]
    assert first["xid"] == "T-00000" and first["status"] == "open" and first["isDeleted"] is False
    assert {"fieldId", "assetId", "taskTypeId"} <= set(first)
    assert report["summary"]["create"] == n + 5000 + 3
    tasks_stored = [o for o in repo.objects().values() if o["kind"] == "Task"]
    assert len(tasks_stored) == n

    again = json.loads(repo.ok("plan", "--json").stdout)
    assert again["changes"] == []
    assert again["reports"]["TaskBatch"]["message"] == (
        "Processed 5000 items, Failed to process 0 items"
    )
    assert {p["message"] for p in again["reports"]["TaskBatch"]["output"]["processedItems"]} == {
        "Item is up to date"
    }


def test_runtime_status_belongs_to_people(repo: Repo) -> None:
    """set-status records who and when; no plan reverts it, even when the manifest's changes."""
    repo.commit(
        {
            "refs.yaml": references(2),
            "tasks/a.yaml": batch(
                "a",
                [
                    task("T-1", "TANK-0000", "      status: in-progress\n"),
                    task("T-2", "TANK-0001"),
                ],
            ),
        }
    )
    repo.ok("apply", "--auto-approve")
    stored = repo.objects()["Task/T-1"]
    assert stored["status"]["status"] == "in-progress"
    assert "status" not in stored["spec"]

    changed = repo.ok("tasks", "set-status", "T-1", "completed", "--by", "alice", "--json")
    status = json.loads(changed.stdout)["status"]
    assert status["status"] == "completed"
    assert status["modifiedBy"] == "alice"
    assert status["completedOn"] == status["modifiedOn"]
    assert set(status["statusAudit"]) >= {"in-progressFor", "completedOn"}

    # The manifest's initial status changes too: still nothing to do.
    repo.commit(
        {
            "tasks/a.yaml": batch(
                "a",
                [task("T-1", "TANK-0000", "      status: on-hold\n"), task("T-2", "TANK-0001")],
            )
        }
    )
    plan = repo.run("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes." in plan.stdout
    repo.ok("apply", "--auto-approve")
    assert repo.objects()["Task/T-1"]["status"]["status"] == "completed"

    listed = repo.ok("tasks", "list").stdout
    assert "T-1" in listed and "completed" in listed and "alice" in listed


def test_single_active_task_counts_the_status_in_the_store(repo: Repo) -> None:
    repo.commit(
        {"refs.yaml": references(1), "tasks/a.yaml": batch("a", [task("T-1", "TANK-0000")])}
    )
    repo.ok("apply", "--auto-approve")
    second = batch("a", [task("T-1", "TANK-0000"), task("T-2", "TANK-0000")])
    repo.commit({"tasks/a.yaml": second})
    blocked = repo.run("plan")
    assert blocked.returncode == 1
    # A plan prints its errors with the plan, on standard output.
    assert "an open task of taskType 'inspection' already exists for asset 'TANK-0000'" in (
        blocked.stdout
    )
    assert "--> manifests/tasks/a.yaml:" in blocked.stdout
    repo.ok("tasks", "set-status", "T-1", "done")
    repo.ok("apply", "--auto-approve")
    assert repo.objects()["Task/T-2"]["status"]["status"] == "open"


def test_removed_task_is_soft_deleted_and_comes_back(repo: Repo) -> None:
    tasks = [task(f"T-{i}", f"TANK-{i:04d}") for i in range(5)]
    repo.commit({"refs.yaml": references(5), "tasks/a.yaml": batch("a", tasks)})
    repo.ok("apply", "--auto-approve")
    repo.ok("tasks", "set-status", "T-4", "in-progress")

    repo.commit({"tasks/a.yaml": batch("a", tasks[:4])})
    plan = repo.ok("plan").stdout
    assert "■ Task/T-4" in plan and "soft-deleted: removed from manifests" in plan
    assert "status.isDeleted: false → true" in plan
    repo.ok("apply", "--auto-approve")
    gone = repo.objects()["Task/T-4"]
    assert gone["state"] == "stopped"
    assert gone["status"]["isDeleted"] is True
    assert gone["status"]["status"] == "in-progress"
    refused = repo.run("tasks", "set-status", "T-4", "completed")
    assert refused.returncode == 1 and "soft-deleted" in refused.stderr

    repo.commit({"tasks/a.yaml": batch("a", tasks)})
    repo.ok("apply", "--auto-approve")
    back = repo.objects()["Task/T-4"]
    assert back["state"] == "active" and back["status"]["isDeleted"] is False
    assert back["status"]["status"] == "in-progress"


def test_seed_request_example_without_references_fails_like_the_seed(repo: Repo) -> None:
    example = Path(__file__).resolve().parent.parent / "examples/seed-payloads/tasks/manifests"
    text = (example / "request-example.yaml").read_text()
    start = text.index('        "asset": {')
    end = text.index('        "assigneeIds"')
    repo.commit(
        {
            "refs.yaml": (example / "references.yaml").read_text(),
            "request.yaml": text[:start] + text[end:],
        }
    )
    failed = repo.run("validate", "--json")
    assert failed.returncode == 1
    errors = json.loads(failed.stdout)["errors"]
    assert [e["error"] for e in errors] == [
        'SchemaError: "asset.type" is required',
        'SchemaError: "value" must contain at least one of [id, xid]',
    ]
    assert all(e["location"].startswith("manifests/request.yaml:") for e in errors)
    assert "Traceback" not in failed.stderr


def test_set_status_of_an_unknown_task(repo: Repo) -> None:
    repo.commit(
        {"refs.yaml": references(1), "tasks/a.yaml": batch("a", [task("T-1", "TANK-0000")])}
    )
    repo.ok("apply", "--auto-approve")
    before = (repo.state / "state.json").read_bytes()
    missing = repo.run("tasks", "set-status", "T-9", "completed", process=True)
    assert missing.returncode == 1
    assert "No task with xid 'T-9'" in missing.stderr and "Traceback" not in missing.stderr
    assert (repo.state / "state.json").read_bytes() == before


# -- review fixes (issue 5) ---------------------------------------------------------------


def test_restored_task_counts_with_its_stored_status(repo: Repo) -> None:
    """A soft-deleted task listed again keeps the status it had, for single active task too."""
    repo.commit(
        {"refs.yaml": references(1), "tasks/a.yaml": batch("a", [task("T-1", "TANK-0000")])}
    )
    repo.ok("apply", "--auto-approve")
    repo.commit({"tasks/a.yaml": batch("a", [task("T-2", "TANK-0000")])})
    repo.ok("apply", "--auto-approve", "--allow-mass-stop")  # T-1 soft-deleted (open), T-2 open
    # The manifest's `status: completed` applies on create only: T-1 comes back open.
    both = [task("T-1", "TANK-0000", "      status: completed\n"), task("T-2", "TANK-0000")]
    repo.commit({"tasks/a.yaml": batch("a", both)})
    blocked = repo.run("plan")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "an open task of taskType 'inspection' already exists" in blocked.stdout
    assert "Task/T-2 is open" in blocked.stdout

    # The reverse: a task completed before it was removed does not count as open.
    repo.ok("tasks", "set-status", "T-2", "completed")
    repo.commit({"tasks/a.yaml": batch("a", [task("T-3", "TANK-0000")])})
    repo.ok("apply", "--auto-approve", "--allow-mass-stop")  # T-2 soft-deleted, T-3 open
    back = batch("a", [task("T-2", "TANK-0000"), task("T-3", "TANK-0000")])
    repo.commit({"tasks/a.yaml": back})
    repo.ok("apply", "--auto-approve")
    stored = repo.objects()
    assert stored["Task/T-2"]["status"]["status"] == "completed"
    assert stored["Task/T-2"]["status"]["isDeleted"] is False


def test_set_status_accepts_only_known_statuses(repo: Repo) -> None:
    """A typo is an error with a did-you-mean, the store untouched; case does not matter."""
    repo.commit(
        {"refs.yaml": references(1), "tasks/a.yaml": batch("a", [task("T-1", "TANK-0000")])}
    )
    repo.ok("apply", "--auto-approve")
    before = (repo.state / "state.json").read_bytes()
    typo = repo.run("tasks", "set-status", "T-1", "competed")
    assert typo.returncode == 1, typo.stdout + typo.stderr
    assert "Unknown task status 'competed'" in typo.stderr
    assert 'Did you mean "completed"?' in typo.stderr
    assert "in-progress" in typo.stderr and "Traceback" not in typo.stderr
    assert (repo.state / "state.json").read_bytes() == before

    repo.ok("tasks", "set-status", "T-1", "In-Progress")
    assert repo.objects()["Task/T-1"]["status"]["status"] == "in-progress"


def test_a_refused_apply_reports_no_item_as_created(repo: Repo) -> None:
    """apply --json refused by a guard: every item unprocessed, with the refusal as reason."""
    repo.commit(
        {
            "refs.yaml": references(3),
            "tasks/a.yaml": batch("a", [task("T-1", "TANK-0000"), task("T-2", "TANK-0001")]),
        }
    )
    repo.ok("apply", "--auto-approve")
    before = (repo.state / "state.json").read_bytes()
    # T-2 goes (1 of 2 tasks, past 20 % with a floor of 1), T-3 is new: the guard refuses.
    repo.commit({"tasks/a.yaml": batch("a", [task("T-1", "TANK-0000"), task("T-3", "TANK-0002")])})
    refused = repo.run("apply", "--auto-approve", "--json", "--min-stop-count", "1")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    report = json.loads(refused.stdout)
    assert report["success"] is False
    assert report["message"] == "Processed 0 items, Failed to process 2 items"
    assert report["output"]["processedItems"] == []
    assert report["output"]["unProcessedItems"] == [
        {
            "message": "Item not processed: the apply was refused "
            "(Plan blocked by the mass-stop guard)",
            "record": {"xid": xid},
        }
        for xid in ("T-1", "T-3")
    ]
    assert [e["error"] for e in report["errors"]] == ["Plan blocked by the mass-stop guard"]
    assert (repo.state / "state.json").read_bytes() == before


def test_set_status_without_a_store_creates_nothing(repo: Repo) -> None:
    assert not repo.state.exists()
    done = repo.run("tasks", "set-status", "T-1", "completed")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "No store at" in done.stderr and "Traceback" not in done.stderr
    assert not repo.state.exists(), "set-status created the state directory"


def test_set_status_over_a_hand_written_audit() -> None:
    """An audit entry with no zone, or minutes that are no number, is kept, not a crash."""
    import datetime as dt

    from fleetward.kinds.tasks import set_status

    at = dt.datetime(2025, 5, 1, 8, 0, tzinfo=dt.UTC)
    naive = {"status": "open", "statusAudit": {"openOn": "2025-04-30T07:30:04"}}
    out = set_status(naive, "completed", "alice", "2025-05-01T08:00:00Z", at)
    assert out["status"] == "completed"
    assert out["statusAudit"]["openOn"] == "2025-04-30T07:30:04"
    odd = {"status": "open", "statusAudit": {"openOn": "2025-04-30T07:30:04Z", "openFor": {"a": 1}}}
    out = set_status(odd, "completed", "alice", "2025-05-01T08:00:00Z", at)
    assert out["statusAudit"]["openFor"] == {"a": 1}
    fine = {"status": "open", "statusAudit": {"openOn": "2025-05-01T07:00:00Z", "openFor": 5}}
    out = set_status(fine, "completed", "alice", "2025-05-01T08:00:00Z", at)
    assert out["statusAudit"]["openFor"] == 65


def test_apply_json_reports_schema_failures_per_item(repo: Repo) -> None:
    """Check 1 failing still prints the bulk-task report: one unprocessed item per task."""
    case = Path(__file__).resolve().parent / "cases/tasks-err-schema/manifests"
    repo.commit({str(p.relative_to(case)): p.read_text() for p in case.rglob("*.yaml")})
    failed = repo.run("apply", "--json", "--auto-approve")
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    report = json.loads(failed.stdout)
    assert report["success"] is False
    assert report["message"] == "Processed 0 items, Failed to process 1 items"
    assert report["output"]["processedItems"] == []
    (item,) = report["output"]["unProcessedItems"]
    assert item["message"] == 'SchemaError : "asset.type" is required'
    assert item["record"] == {"xid": "28-04-2025-08:32AM"}
    assert len(report["errors"]) == 3


def template(*items: str) -> str:
    return "      template:\n" + "".join(f"        - {item}\n" for item in items)


def test_template_xids_against_stored_and_failed_tasks(repo: Repo) -> None:
    """Check 3 counts stored (soft-deleted) tasks, and forgets the xids of a task it fails."""
    one = [task("T-1", "TANK-0000"), task("T-2", "TANK-0001")]
    repo.commit({"refs.yaml": references(4), "tasks/a.yaml": batch("a", one)})
    repo.ok("apply", "--auto-approve")
    repo.commit({"tasks/a.yaml": batch("a", one[:1])})
    repo.ok("apply", "--auto-approve", "--allow-mass-stop")  # T-2 soft-deleted
    reuse = template("{xid: T-2, data: {kw: 1}}")
    repo.commit({"tasks/a.yaml": batch("a", [task("T-1", "TANK-0000", reuse)])})
    refused = repo.run("apply", "--auto-approve", "--json")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    unprocessed = json.loads(refused.stdout)["output"]["unProcessedItems"]
    assert unprocessed == [
        {"message": "ValidationError : duplicate xid 'T-2'", "record": {"xid": "T-1"}}
    ]

    # T-3 fails on its second item (T-1 is a task); its first item, X, stays free for T-4.
    tasks = [
        task("T-1", "TANK-0000"),
        task("T-3", "TANK-0002", template("{xid: X, data: {kw: 1}}", "{xid: T-1, data: {kw: 1}}")),
        task("T-4", "TANK-0003", template("{xid: X, data: {kw: 1}}")),
    ]
    repo.commit({"tasks/a.yaml": batch("a", tasks)})
    refused = repo.run("apply", "--auto-approve", "--json")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    unprocessed = json.loads(refused.stdout)["output"]["unProcessedItems"]
    # Only T-3 fails a check; T-1 and T-4 pass theirs and are not processed either,
    # since the apply was refused.
    failing = [u for u in unprocessed if not u["message"].startswith("Item not processed")]
    assert [u["record"]["xid"] for u in failing] == ["T-3"]
    assert [u["record"]["xid"] for u in unprocessed] == ["T-3", "T-1", "T-4"]


def test_same_assignee_both_ways_is_no_cycle(repo: Repo) -> None:
    pair = template(
        "{xid: A, data: {kw: 1}, sameAssigneeAs: {xid: B}}",
        "{xid: B, data: {kw: 2}, sameAssigneeAs: {xid: A}}",
    )
    repo.commit(
        {"refs.yaml": references(1), "tasks/a.yaml": batch("a", [task("T-1", "TANK-0000", pair)])}
    )
    repo.ok("apply", "--auto-approve")
    cycle = template(
        "{xid: A, data: {kw: 1}, dependsOn: {xid: B}}",
        "{xid: B, data: {kw: 2}, dependsOn: {xid: A}}",
    )
    repo.commit({"tasks/a.yaml": batch("a", [task("T-1", "TANK-0000", cycle)])})
    refused = repo.run("plan")
    assert refused.returncode == 1
    assert "template dependsOn cycle: A → B → A" in refused.stdout


def test_unresolvable_ref_at_check_time_is_a_located_failure() -> None:
    """A TaskType stored before $refs were checked at load time fails its tasks, no crash."""
    from types import SimpleNamespace

    from fleetward.kinds.tasks import references, templates
    from fleetward.kinds.template_schema import TemplateCheckers

    index = references.Index("TaskType")
    schema = {"type": "object", "properties": {"kw": {"$ref": "#/$defs/missing"}}}
    index.add("reading", {"xid": "reading", "name": "Reading", "templateSchema": schema})
    world = SimpleNamespace(indexes={"TaskType": index})
    spec = {"xid": "T-1", "template": [{"xid": "A", "data": {"kw": 1}}]}
    item = SimpleNamespace(
        want=SimpleNamespace(spec=spec, origin=SimpleNamespace(yaml_path=("spec", "tasks", 0))),
        task_type="reading",
    )
    check = templates.template_check(world, TemplateCheckers())  # type: ignore[arg-type]
    (failed,) = check(item, world)  # a check returns every failure it finds
    assert failed.label == "SchemaError"
    assert "has a $ref that cannot be resolved" in failed.message
    assert failed.where == ("spec", "tasks", 0, "template", 0, "data")
