"""TaskBatch (seed 003): tasks declared in bulk, each `Task/<xid>`; status stays with people.

The stored spec is what Git owns (normalised: UTC dates, minutes, `endTime`
derived, defaults dropped). The runtime fields (`status`, `completedOn`,
`resolvedBy`, …) go to the object's status on create and are never reverted;
`fleetward tasks set-status` changes them. A task removed from Git is
soft-deleted (`isDeleted: true`, state stopped). The plan-stage checks live in
`task_checks`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from fleetward.errors import Problem
from fleetward.kinds import task_checks
from fleetward.kinds.base import Document, KindPlugin, ObjectKind, PlanContext, declare
from fleetward.kinds.problems import PathProblem
from fleetward.kinds.references import derived_id
from fleetward.kinds.task_schema import RUNTIME_FIELDS, TaskBatchSpec, TaskSpec, schema_problems
from fleetward.model import Action, DesiredObject
from fleetward.timestamps import to_iso

OPEN = "open"
# Statuses after which a task no longer counts as open (single active task), any case.
CLOSED_STATUSES = frozenset(
    {"completed", "complete", "done", "closed", "resolved", "cancelled", "canceled", "rejected"}
)
COMPLETED = frozenset({"completed", "complete", "done"})
RESOLVED = frozenset({"resolved", "closed"})
# What `tasks set-status` accepts: the seed's "open", work under way, approval, and the
# closed statuses above. A typo would otherwise leave a task open under a new name.
STATUSES = (OPEN, "in-progress", "approved", *sorted(CLOSED_STATUSES))


def known_status(text: str) -> str | None:
    """`text` as the status it names (any case, stored lower-case); None if unknown."""
    lowered = text.strip().lower()
    return lowered if lowered in STATUSES else None


def is_open(status: Mapping[str, Any]) -> bool:
    """Open: not soft-deleted and not in a closed status."""
    return not status.get("isDeleted") and (
        str(status.get("status") or OPEN).lower() not in CLOSED_STATUSES
    )


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


def set_status(
    status: Mapping[str, Any], new: str, who: str, now: str, at: dt.datetime, created: str = ""
) -> dict[str, Any]:
    """The status after a person sets it to `new` at `now`: the seed's audit fields recorded.

    `statusAudit` keeps `<status>On` (when a status was entered) and `<status>For`
    (minutes spent in it, accumulated), as the seed's response shows them. A task
    still in the status it was created with has been in it since `created`.
    """
    out = dict(status)
    old = str(out.get("status") or OPEN)
    audit = dict(out.get("statusAudit") or {})
    entered = audit.get(f"{old}On") or created or None
    before = audit.get(f"{old}For") or 0
    if (
        isinstance(entered, str)
        and isinstance(before, int | float)
        and not isinstance(before, bool)
    ):
        try:
            since = dt.datetime.fromisoformat(entered)
            spent = int((at - since).total_seconds() // 60)  # TypeError when since is naive
            audit[f"{old}For"] = int(before) + max(spent, 0)
        except (ValueError, TypeError, OverflowError):
            pass  # a hand-written audit entry (no zone, not a date): keep it as it is
    audit[f"{new}On"] = now
    out.update(status=new, statusAudit=audit, modifiedBy=who, modifiedOn=now)
    lowered = new.lower()
    if lowered in COMPLETED:
        out.update(completedOn=now)
    if lowered in RESOLVED:
        out.update(resolvedBy=who, resolvedOn=now)
    if lowered == "approved":
        out.update(approvedBy=who, approvedOn=now)
    return out


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
        self, exc: ValidationError, prefix: tuple[str | int, ...]
    ) -> list[PathProblem]:
        return schema_problems(exc, prefix)

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
        return task_checks.run(context, self.kind)


PLUGIN = TaskBatchPlugin()
