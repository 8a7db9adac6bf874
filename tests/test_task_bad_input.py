"""Bad TaskBatch input: a readable error at file:line:column, exit 1, the store untouched.

Same world as test_bad_input (a real Git repository with a good revision
applied, the real CLI as a subprocess). Schema errors (check 1) fail
`validate`, `plan` and `apply` alike; the plan-stage checks (entity resolution
and after) need the store, so `validate` passes them and `plan` / `apply` fail.
"""

from __future__ import annotations

import subprocess

import test_bad_input
from test_bad_input import Expect, World, assert_user_error, expect, fleetward_all

from fleetward.kinds.references import derived_id

# The same fixtures as test_bad_input: a good revision applied, copied per test.
template = test_bad_input.template
world = test_bad_input.world

REFS = """\
apiVersion: fleetward/v1
kind: Field
metadata: {name: north}
spec: {xid: north, name: North depot}
---
apiVersion: fleetward/v1
kind: Field
metadata: {name: south}
spec: {xid: south, name: South depot}
---
apiVersion: fleetward/v1
kind: TaskType
metadata: {name: inspection}
spec: {xid: inspection, name: Inspection}
---
apiVersion: fleetward/v1
kind: User
metadata: {name: jdoe}
spec: {userName: jdoe, email: jdoe@example.com}
"""


def batch(*task_lines: str) -> str:
    """A TaskBatch whose one task is TRK-1's inspection plus `task_lines` (6-space indented)."""
    return (
        "apiVersion: fleetward/v1\n"  # 1
        "kind: TaskBatch\n"  # 2
        "metadata: {name: weekly}\n"  # 3
        "spec:\n"  # 4
        "  tasks:\n"  # 5
        "    - xid: INSP-1\n"  # 6
        "      field: {xid: north}\n"  # 7
        "      asset: {xid: TRK-1, type: truck}\n"  # 8
        + "".join(f"      {line}\n" for line in task_lines)  # 9 …
    )


def rejected_by_plan(world: World, *expected: Expect) -> None:
    """validate passes (no store); plan and apply fail, changing nothing."""
    before = world.snapshot()
    validate, plan, apply = fleetward_all(world.commands())
    assert validate.returncode == 0, validate.stdout + validate.stderr
    # `plan` prints the errors under the plan, on standard output; `apply` refuses on stderr.
    as_stderr = subprocess.CompletedProcess(plan.args, plan.returncode, "", plan.stdout)
    assert "Traceback" not in plan.stderr
    for result in (as_stderr, apply):
        assert_user_error(result, *expected, count=len(expected))
    assert world.snapshot() == before, "the state directory changed"


def test_wrong_date_formats(world: World) -> None:
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                "dueDate: 31/12/2025",  # 10
                "startTime: 2025-04-30 07:30",  # 11
                "duration: 1h",  # 12
                "completedOn: 2025-05-01",  # 13
            ),
        }
    )
    world.assert_rejected(
        expect(
            "manifests/tasks.yaml:10:16",
            "spec.tasks[0].dueDate",
            "'31/12/2025' is not an ISO 8601 date (2025-05-31) or date-time",
        ),
        expect("manifests/tasks.yaml:11:18", "has no time zone", "add Z (UTC)"),
        expect("manifests/tasks.yaml:12:17", "'1h' is not a number of minutes or an ISO 8601"),
        expect("manifests/tasks.yaml:13:20", "The date 2025-05-01 has no time"),
        count=4,
    )


def test_reference_by_id_and_xid_that_disagree(world: World) -> None:
    # Field/south declares no id: fleetward derives it from the xid (UUIDv5).
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
            ).replace(
                "field: {xid: north}", f"field: {{id: {derived_id('Field', 'south')}, xid: north}}"
            ),
        }
    )
    rejected_by_plan(
        world,
        expect(
            "manifests/tasks.yaml:7:7",
            "ValidationError: field reference is ambiguous",
            "is Field/south but xid 'north' is Field/north",
            "check 2 of 5 (entity-resolution)",
        ),
    )


def test_unknown_task_type(world: World) -> None:
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch("taskType: {xid: inspecton}"),  # 9
        }
    )
    rejected_by_plan(
        world,
        expect(
            "manifests/tasks.yaml:9:23",
            "ValidationError: taskType with xid 'inspecton' not found in data base",
            "no TaskType with xid 'inspecton'",
        ),
    )


def test_assignee_that_does_not_exist(world: World) -> None:
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                "assigneeIds: [{userName: jdoe}, {userName: jdeo}]",  # 10
            ),
        }
    )
    rejected_by_plan(
        world,
        expect(
            "manifests/tasks.yaml:10:50",
            "ValidationError: assignee with userName 'jdeo' not found in data base",
            "fix the reference's userName",
        ),
    )


def test_seven_mib_batch_file_is_refused(world: World) -> None:
    one = (
        "    - xid: T-{i:06d}\n      field: {{xid: north}}\n"
        "      asset: {{xid: TRK-1, type: truck}}\n      taskType: {{xid: inspection}}\n"
        "      description: {pad}\n"
    )
    pad = "x" * 200
    lines = ["apiVersion: fleetward/v1\nkind: TaskBatch\nmetadata: {name: huge}\nspec:\n  tasks:\n"]
    size = len(lines[0])
    i = 0
    while size < 7 * 1024 * 1024:
        line = one.format(i=i, pad=pad)
        lines.append(line)
        size += len(line)
        i += 1
    world.repo.commit({"manifests/refs.yaml": REFS, "manifests/huge.yaml": "".join(lines)})
    world.assert_rejected(
        expect("manifests/huge.yaml:1:1", "Manifest file too large", "the limit is 6 MiB"),
    )
