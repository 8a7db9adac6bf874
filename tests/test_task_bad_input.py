"""Bad TaskBatch input: a readable error at file:line:column, exit 1, the store untouched.

Same world as test_bad_input (a real Git repository with a good revision
applied, the real CLI in-process; as a subprocess where a hang must end in
the subprocess's timeout). Schema errors (check 1) fail
`validate`, `plan` and `apply` alike; the plan-stage checks (entity resolution
and after) need the store, so `validate` passes them and `plan` / `apply` fail.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import test_bad_input
from test_bad_input import (
    Expect,
    World,
    assert_user_error,
    expect,
    fleetward_all,
    fleetward_in,
)

from fleetward.kinds.base import derived_id

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


def rejected_by_plan(world: World, *expected: Expect, process: bool = False) -> None:
    """validate passes (no store); plan and apply fail, changing nothing (in-process
    unless `process`: then as three `python -m fleetward` at once)."""
    before = world.snapshot()
    commands = world.commands()
    results = fleetward_all(commands) if process else [fleetward_in(*c) for c in commands]
    validate, plan, apply = results
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


# -- review fixes (issue 5): input that crashed or slipped through -----------------------


def test_unquoted_timestamp_without_zone_is_refused(world: World) -> None:
    """YAML reads `2025-04-30 09:30:00` as a timestamp; with no zone it is refused, not UTC."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                "startTime: 2025-04-30 09:30:00",  # 10
                "dueDate: 2025-04-30T09:30:00+02:00",  # 11 (a zone: fine)
                "completedOn: 2025-04-30T09:30:00",  # 12
            ),
        }
    )
    world.assert_rejected(
        expect("manifests/tasks.yaml:10:18", "'2025-04-30 09:30:00' has no time zone", "add Z"),
        expect("manifests/tasks.yaml:12:20", "'2025-04-30 09:30:00' has no time zone"),
        count=2,
    )


def test_durations_that_are_not_finite_or_overflow_end_time(world: World) -> None:
    """Overflowing durations fail the schema; non-finite ones (`.nan`, `.inf`) never reach
    it: the YAML reader refuses them by name, each file at its value."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                "startTime: 9999-12-31T23:59:00Z",  # 10
                "duration: 10",  # 11
            )
            + "    - xid: INSP-3\n"  # 12
            "      field: {xid: north}\n"  # 13
            "      asset: {xid: TRK-1, type: truck}\n"  # 14
            "      taskType: {xid: inspection}\n"  # 15
            "      duration: P99999999999D\n",  # 16
            "manifests/delay-nan.yaml": batch("delayMinutes: .nan"),  # 9
            "manifests/duration-inf.yaml": batch("taskType: {xid: inspection}", "duration: .inf"),
            "manifests/duration-nan.yaml": batch("taskType: {xid: inspection}", "duration: .nan"),
        }
    )
    non_finite = ("non-finite numbers have no JSON form", "Write a finite number")
    world.assert_rejected(
        expect("manifests/tasks.yaml:6:7", "ends after the year 9999"),
        expect("manifests/tasks.yaml:16:17", "'P99999999999D' is longer"),
        expect("manifests/delay-nan.yaml:9:21", "Non-finite number '.nan'", *non_finite),
        expect("manifests/duration-inf.yaml:10:17", "Non-finite number '.inf'", *non_finite),
        expect("manifests/duration-nan.yaml:10:17", "Non-finite number '.nan'", *non_finite),
        count=5,
    )


def test_status_audit_is_checked(world: World) -> None:
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                'statusAudit: {openOn: "2025-04-30T07:30:04", openFor: {a: 1}}',  # 10
            ),
        }
    )
    world.assert_rejected(
        expect("manifests/tasks.yaml:10:7", "Entry 'openOn' of statusAudit", "has no time zone"),
        count=1,
    )


def test_status_audit_minutes_must_be_a_number(world: World) -> None:
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                'statusAudit: {openOn: "2025-04-30T07:30:04Z", openFor: {a: 1}}',  # 10
            ),
        }
    )
    world.assert_rejected(
        expect("manifests/tasks.yaml:10:7", "Entry 'openFor' of statusAudit", "Expected minutes"),
        count=1,
    )


def test_template_schema_ref_that_names_nothing(world: World) -> None:
    task_type = (
        "apiVersion: fleetward/v1\n"  # 1
        "kind: TaskType\n"  # 2
        "metadata: {name: reading}\n"  # 3
        "spec:\n"  # 4
        "  xid: reading\n"  # 5
        "  name: Reading\n"  # 6
        "  templateSchema:\n"  # 7
        "    type: object\n"  # 8
        "    properties:\n"  # 9
        "      kw: {$ref: '#/$defs/kilowatts'}\n"  # 10
    )
    world.repo.commit({"manifests/refs.yaml": REFS, "manifests/reading.yaml": task_type})
    world.assert_rejected(
        expect(
            "manifests/reading.yaml:10:18",
            "Unresolvable $ref '#/$defs/kilowatts' in templateSchema",
            "nothing is at",
        ),
        count=1,
    )


def test_duplicate_reference_ids_and_task_type_names(world: World) -> None:
    same = "6f1c2b7e-4a4d-4a55-9d51-0c2a0d8e7b11"
    refs = REFS.replace(
        "spec: {xid: north, name: North depot}", f"spec: {{xid: north, name: North, id: {same}}}"
    ).replace(
        "spec: {xid: south, name: South depot}", f"spec: {{xid: south, name: South, id: {same}}}"
    )
    extra = (
        "---\napiVersion: fleetward/v1\nkind: TaskType\nmetadata: {name: inspection-2}\n"
        "spec: {xid: inspection-2, name: Inspection}\n"
    )
    tasks = batch("taskType: {xid: inspection}")
    world.repo.commit({"manifests/refs.yaml": refs, "manifests/tasks.yaml": tasks})
    rejected_by_plan(
        world,
        expect("manifests/refs.yaml:9:37", "Duplicate Field id", "Field/south has the id"),
    )
    world.repo.commit({"manifests/refs.yaml": REFS + extra, "manifests/tasks.yaml": tasks})
    rejected_by_plan(
        world,
        expect("manifests/refs.yaml:24:33", "Duplicate TaskType name 'Inspection'"),
    )


def test_locating_many_problems_in_a_big_file_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 bad items in one file: the file is composed once and split into lines once,
    not once per problem (per problem, 8,000 items in 1.8 MB took ~30 s instead of ~1 s)."""
    import fleetward.loading
    from fleetward.errors import Problem
    from fleetward.loading import _locate_all

    class Text(str):
        """The file's text, counting how often it is split into lines."""

        splits = 0

        def splitlines(self, keepends: bool = False) -> list[str]:
            Text.splits += 1
            return super().splitlines(keepends)

    composed = 0
    compose_all = fleetward.loading.compose_all

    def counting_compose_all(text: str) -> Any:
        nonlocal composed
        composed += 1
        return compose_all(str(text))  # the C parser takes an exact str, not Text

    monkeypatch.setattr(fleetward.loading, "compose_all", counting_compose_all)
    n = 2000
    text = Text(
        "apiVersion: fleetward/v1\nkind: TaskBatch\nmetadata: {name: big}\nspec:\n  tasks:\n"
        + "".join(
            f"    - xid: T-{i:05d}\n      description: {'x' * 80}\n      duration: bad\n"
            for i in range(n)
        )
    )
    problem = Problem("Invalid value", "A duration is bad here.", "Fix the duration.")
    pending = [(0, ("spec", "tasks", i, "duration"), False, problem) for i in range(n)]
    located = _locate_all(text, pending)
    assert len(located) == n
    assert [item.line for item in located] == [8 + 3 * i for i in range(n)]
    assert located[-1].snippet is not None and "duration: bad" in located[-1].snippet
    assert (composed, Text.splits) == (1, 1)


def test_dates_whose_utc_time_leaves_the_calendar(world: World) -> None:
    """Valid ISO 8601 whose UTC instant is in the year 10000 (or 0): an error, not a crash."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                'dueDate: "9999-12-31T23:59:59-14:00"',  # 10
                "startTime: 0001-01-01T00:00:00+14:00",  # 11
                "statusAudit: {openOn: '9999-12-31T23:00:00-01:00'}",  # 12
            ),
        }
    )
    world.assert_rejected(
        expect("manifests/tasks.yaml:10:16", "outside the years 1 to 9999", "offset"),
        expect("manifests/tasks.yaml:11:18", "outside the years 1 to 9999"),
        expect("manifests/tasks.yaml:12:7", "Entry 'openOn' of statusAudit", "1 to 9999"),
        count=3,
    )


def test_quoted_dates_that_are_not_in_the_calendar(world: World) -> None:
    """A day, month or hour out of range is a typo to point at, with the calendar's reason."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch(
                "taskType: {xid: inspection}",  # 9
                'startTime: "2026-02-30T08:00:00Z"',  # 10
                'dueDate: "2026-13-01"',  # 11
                'completedOn: "2026-11-24T24:00:00Z"',  # 12
            ),
        }
    )
    world.assert_rejected(
        expect("manifests/tasks.yaml:10:18", "day is out of range for month"),
        expect("manifests/tasks.yaml:11:16", "month must be in 1..12"),
        expect("manifests/tasks.yaml:12:20", "hour must be in 0..23"),
        count=3,
    )


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("startTime: 2026-02-30T08:00:00Z", "day is out of range for month"),
        ("dueDate: 2026-02-30", "day is out of range for month"),
        ("dueDate: 2026-13-01", "month must be in 1..12"),
        ("startTime: 2026-11-24T24:00:00Z", "hour must be in 0..23"),
    ],
)
def test_unquoted_dates_that_are_not_in_the_calendar(world: World, line: str, says: str) -> None:
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/tasks.yaml": batch("taskType: {xid: inspection}", line),  # 9, 10
        }
    )
    column = line.index(":") + 9  # 6 spaces of indent, ": " and 1-based
    world.assert_rejected(expect(f"manifests/tasks.yaml:10:{column}", says), count=1)


def _reading(*schema_lines: str) -> str:
    """TaskType/reading whose templateSchema is `schema_lines` (4-space indented, from line 8)."""
    return (
        "apiVersion: fleetward/v1\n"  # 1
        "kind: TaskType\n"  # 2
        "metadata: {name: reading}\n"  # 3
        "spec:\n"  # 4
        "  xid: reading\n"  # 5
        "  name: Reading\n"  # 6
        "  templateSchema:\n" + "".join(f"    {line}\n" for line in schema_lines)  # 7, 8 …
    )


def test_template_schema_refs_that_recurse_in_place(world: World) -> None:
    """`$ref: "#"` (or a cycle of $refs) checks the same value forever: refused at validate."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/self.yaml": _reading('$ref: "#"'),  # 8
            "manifests/cycle.yaml": _reading(
                "$defs:",  # 8
                "  a: {$ref: '#/$defs/b'}",  # 9
                "  b: {allOf: [{$ref: '#/$defs/a'}]}",  # 10
                "$ref: '#/$defs/a'",  # 11
            ).replace("reading", "cycle"),
        }
    )
    world.assert_rejected(
        expect("manifests/self.yaml:8:11", "Recursive $ref '#' in templateSchema", "never end"),
        expect("manifests/cycle.yaml:10:26", "Recursive $ref '#/$defs/a' in templateSchema"),
        count=2,
    )


def test_template_schema_that_nests_itself_in_its_data_is_fine(world: World) -> None:
    """A tree schema refers to itself one level down: checking ends with the data."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/reading.yaml": _reading(
                "$defs:",  # 8
                "  node:",  # 9
                "    type: object",  # 10
                "    properties: {children: {type: array, items: {$ref: '#/$defs/node'}}}",  # 11
                "$ref: '#/$defs/node'",  # 12
            ),
            "manifests/tasks.yaml": batch(
                "taskType: {xid: reading}",  # 9
                "template:",  # 10
                "  - xid: INSP-1-a",  # 11
                "    data: {children: [{children: []}, {children: [{children: 1}]}]}",  # 12
            ),
        }
    )
    rejected_by_plan(
        world,
        expect(
            "manifests/tasks.yaml:12:68",
            '"template[0].data.children[1].children[0].children" 1 is not of type',
        ),
    )


def test_template_schema_patterns_are_matched_in_linear_time(world: World) -> None:
    """`^(a+)+$` against 100 a's and a '!': 2^100 steps for a backtracking engine (the
    subprocesses' timeout would end the test); RE2 answers at once."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/reading.yaml": _reading(
                "properties: {code: {pattern: '^(a+)+$'}}",  # 8
                "patternProperties: {'^(b+)+$': {type: string}}",  # 9
                "additionalProperties: false",  # 10
            ),
            "manifests/tasks.yaml": batch(
                "taskType: {xid: reading}",  # 9
                "template:",  # 10
                "  - xid: INSP-1-a",  # 11
                f"    data: {{code: {'a' * 100}!}}",  # 12
            ),
        }
    )
    rejected_by_plan(
        world, expect("manifests/tasks.yaml:12:24", "does not match '^(a+)+$'"), process=True
    )
    world.repo.commit(
        {
            "manifests/tasks.yaml": batch(
                "taskType: {xid: reading}",  # 9
                "template:",  # 10
                "  - xid: INSP-1-b",  # 11
                f"    data: {{{'b' * 100}!: x}}",  # 12
            )
        }
    )
    rejected_by_plan(
        world,
        expect("manifests/tasks.yaml:12:11", "does not match any of the regexes: '^(b+)+$'"),
        process=True,
    )


def test_template_schemas_that_cannot_be_checked_in_bounded_time(world: World) -> None:
    """Patterns RE2 cannot run (backreferences, lookaround), branches that multiply, and
    unevaluatedProperties with patternProperties: refused at validate, where written."""
    doubling = [
        f"  a{i}: {{allOf: [{{$ref: '#/$defs/a{i + 1}'}}, {{$ref: '#/$defs/a{i + 1}'}}]}}"
        for i in range(30)
    ]
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/reading.yaml": _reading(
                "properties:",  # 8
                "  code: {pattern: '(a)\\1'}",  # 9
                "  nested: {pattern: '" + "(" * 600 + ")" * 600 + "'}",  # 10
                "patternProperties: {'^(?!x)': {type: string}}",  # 11
            ),
            "manifests/doubling.yaml": _reading(
                "$defs:", *doubling, "  a30: {type: object}", "$ref: '#/$defs/a0'"
            ).replace("reading", "doubling"),
            "manifests/unevaluated.yaml": _reading(
                "patternProperties: {'^a': {}}",  # 8
                "unevaluatedProperties: false",  # 9
            ).replace("reading", "unevaluated"),
        }
    )
    world.assert_rejected(
        expect("manifests/reading.yaml:9:23", "Unsupported pattern '(a)\\\\1'", "RE2"),
        expect("manifests/reading.yaml:11:25", "Unsupported pattern '^(?!x)'", "lookaround"),
        expect("manifests/doubling.yaml:7:3", "Too costly templateSchema"),
        expect("manifests/unevaluated.yaml:9:5", "unevaluatedProperties with patternProperties"),
        count=4,
    )


def test_template_data_that_multiplies_the_work_fails_its_item(world: World) -> None:
    """Each level of the data checks the next level twice: 2^30 checks for 30 levels. The
    schema is bounded for any one value, so validate passes; plan stops the item's check
    at its budget and reports it at the data."""
    world.repo.commit(
        {
            "manifests/refs.yaml": REFS,
            "manifests/reading.yaml": _reading(
                "$defs:",  # 8
                "  n: {properties: {a: {allOf: [{$ref: '#/$defs/n'}, {$ref: '#/$defs/n'}]}}}",
                "$ref: '#/$defs/n'",  # 10
            ),
            "manifests/tasks.yaml": batch(
                "taskType: {xid: reading}",  # 9
                "template:",  # 10
                "  - xid: INSP-1-a",  # 11
                "    data: " + "{a: " * 30 + "1" + "}" * 30,  # 12
            ),
        }
    )
    rejected_by_plan(
        world,
        expect(
            "manifests/tasks.yaml:12:11",
            '"template[0].data" cannot be checked',
            "more than 100000 keyword evaluations",
        ),
        process=True,
    )
