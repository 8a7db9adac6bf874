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

    def references(self, document: Document) -> Iterable[str]:
        """The assets, fields, task types, users and linked tasks the batch's tasks (and
        their template items) name. A reference by `id` alone names no object key
        without the store's index, so it depends on every object of its kind."""
        spec: TaskBatchSpec = document.spec
        found: dict[str, None] = {}
        for task in spec.tasks:
            for kind, ref in (("Asset", task.asset), ("Field", task.field)):
                found[_key(kind, ref.xid)] = None
            found[_key("TaskType", task.taskType.xid)] = None
            for user in task.assigneeIds:
                found[_key("User", user.userName)] = None
            for linked in task.linkedTasks:
                found[_key("Task", linked.xid)] = None
            for item in task.template:
                if item.asset is not None:
                    found[_key("Asset", item.asset.xid)] = None
                if item.field is not None:
                    found[_key("Field", item.field.xid)] = None
                if item.taskType is not None:
                    found[_key("TaskType", item.taskType.xid)] = None
        return tuple(found)

    def claims(self, raw_spec: Any) -> Iterable[str]:
        """The tasks an invalid batch still names by xid: a valid batch declaring one of
        them is held with it."""
        tasks = raw_spec.get("tasks") if isinstance(raw_spec, dict) else None
        for task in tasks if isinstance(tasks, list) else ():
            xid = task.get("xid") if isinstance(task, dict) else None
            if isinstance(xid, str) and xid:
                yield f"Task/{xid}"


def _key(kind: str, ident: str | None) -> str:
    """The object key a reference names, or every object of its kind (`Kind/*`) when it
    names one by `id` (or a TaskType by name) only."""
    return f"{kind}/{ident}" if ident else f"{kind}/*"


PLUGIN = TaskBatchPlugin()
