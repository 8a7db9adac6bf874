"""TaskBatch (seed 003): tasks declared in bulk, each `Task/<xid>`; status stays with people.

The stored spec is what Git owns (normalised: UTC dates, minutes, `endTime`
derived, defaults dropped). The runtime fields (`status`, `completedOn`,
`resolvedBy`, …) go to the object's status on create and are never reverted;
`fleetward tasks set-status` changes them (`status`). A task removed from Git is
soft-deleted (`isDeleted: true`, state stopped). The plan-stage checks live in
`checks`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from fleetward.errors import Problem
from fleetward.kinds.base import (
    Document,
    KindPlugin,
    ObjectKind,
    PlanContext,
    declare,
    derived_id,
)
from fleetward.kinds.problems import PathProblem
from fleetward.kinds.tasks import checks
from fleetward.kinds.tasks.schema import RUNTIME_FIELDS, TaskBatchSpec, TaskSpec, schema_problems
from fleetward.kinds.tasks.status import OPEN
from fleetward.model import Action, DesiredObject
from fleetward.timestamps import to_iso


def normalize(task: TaskSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stored spec, initial status) of one task."""
    body = task.model_dump(exclude_defaults=True)
    initial = {k: body.pop(k) for k in RUNTIME_FIELDS if k in body}
    body["id"] = task.id or derived_id("Task", task.xid)
    if task.startTime is not None and task.duration is not None:
        body["endTime"] = end_time(task.startTime, task.duration)
    return body, initial


def end_time(start: str, minutes: float) -> str:
    """startTime + duration, as the seed's response derives `endTime`."""
    return to_iso(dt.datetime.fromisoformat(start) + dt.timedelta(minutes=minutes), "auto")


def derive_status(
    spec: Mapping[str, Any], previous: Mapping[str, Any] | None, changed: bool
) -> dict[str, Any]:
    """A new task starts open; a soft-deleted task listed again is undeleted. Nothing else moves."""
    if previous is None:
        return {"status": OPEN, "isDeleted": False}
    if previous.get("isDeleted"):
        return {"isDeleted": False}
    return {}


TASK = ObjectKind(
    name="Task",
    id_field="xid",
    on_removal=Action.STOP,
    removal_reason="soft-deleted: removed from manifests",
    derive_status=derive_status,
    removal_status={"isDeleted": True},
)


class TaskBatchPlugin(KindPlugin):
    kind = "TaskBatch"
    spec_model = TaskBatchSpec
    object_kinds = (TASK,)
    located_in_plan = True

    def schema_problems(
        self, exc: ValidationError, prefix: tuple[str | int, ...], raw: Any
    ) -> list[PathProblem]:
        return schema_problems(exc, prefix, raw)

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        spec: TaskBatchSpec = document.spec
        for i, task in enumerate(spec.tasks):
            body, initial = normalize(task)
            yield declare(
                "Task",
                task.xid,
                body,
                document,
                path,
                ("spec", "tasks", i),
                initial_status=initial or None,
            )

    def check_plan(self, context: PlanContext) -> Iterable[Problem]:
        return checks.run(context, self.kind)


PLUGIN = TaskBatchPlugin()
