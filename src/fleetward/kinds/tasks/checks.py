"""The seed's task checks 2–5, per item, over the plan in progress; and its response report.

Check 1 (schema) runs when a manifest loads. Here, for every task of the
revision, in the seed's order, every failure of every check that can still
run once an earlier one failed (one plan shows them all, not one per run):
(2) entity resolution — field, asset (and its type), taskType, assignees and
`workflowStepId` exist in the desired state or in the store (and are not being
removed by this plan); (3) duplicates — template item xids unique across every
task and template item; (4) single active task — one open task per asset for a
TaskType with `singleActiveTask: true`, the store's runtime status counting;
(5) template — each item's `data` against its TaskType's `templateSchema`, and
`dependsOn` / `sameAssigneeAs` naming items of the same template, without cycles.
Check 4 needs the task's TaskType and asset resolved, and check 5 skips the data of
a template item whose TaskType did not resolve; the rest runs whatever failed before.
The outcome goes to `context.reports["TaskBatch"]` in the seed's response shape.

Check 2 and what every check is handed are `references`', check 5 is `templates`';
checks 3 and 4 and the run over them are here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleetward.errors import Problem
from fleetward.kinds.base import PlanContext
from fleetward.kinds.tasks.references import Check, Failed, Item, World, resolve
from fleetward.kinds.tasks.status import is_open
from fleetward.kinds.tasks.templates import template_check
from fleetward.kinds.template_schema import TemplateCheckers
from fleetward.model import (
    Action,
    ObjectKey,
    ObjectState,
    Origin,
)

CHECKS = ("schema", "entity-resolution", "duplicate-check", "single-active-task", "template-schema")
_MESSAGES = {
    Action.CREATE: "Item got created",
    Action.UPDATE: "Item got updated",
    Action.NOOP: "Item is up to date",
}


def run(context: PlanContext, batch_kind: str) -> list[Problem]:
    """Check every task of the revision; fill the report; return one problem per failure."""
    items = [
        Item(key, obj, context.stored.get(key))
        for key, obj in context.desired.items()
        if obj.kind == "Task"
    ]
    world = World(context)
    clashes = _clashes(context, world)
    if not items and not any(d.kind == batch_kind for _, d in context.documents):
        return clashes
    items.sort(key=lambda i: (i.want.origin.path, i.want.origin.document, i.want.origin.yaml_path))
    # Each check runs over every item before the next starts: check 3 hands out template
    # xids and check 4 open-task slots only to items that passed everything before them.
    failed: dict[ObjectKey, list[tuple[int, Failed]]] = {}
    stages: tuple[Check, ...] = (
        resolve,
        _duplicates(items, context, failed),
        _single_active(items, world, failed),
        template_check(world, context.caches.entry(TemplateCheckers)),
    )
    for number, stage in enumerate(stages, start=2):
        for item in items:
            for failure in stage(item, world):
                failed.setdefault(item.key, []).append((number, failure))
    processed: list[dict[str, Any]] = []
    unprocessed: list[dict[str, Any]] = []
    problems = list(clashes)
    for item in items:
        failures = failed.get(item.key)
        if failures is None:
            processed.append(_processed(item, context))
            continue
        # The seed's response has one message per item: the first check it fails.
        number, first = failures[0]
        unprocessed.append(
            {"message": _seed_message(first), "record": {"xid": item.want.spec["xid"]}}
        )
        problems.extend(_problem(context, item, number, failure) for number, failure in failures)
    context.reports[batch_kind] = bulk_report(processed, unprocessed)
    return problems


def _seed_message(failure: Failed) -> str:
    return f"{failure.label} : {failure.message}"


def _problem(context: PlanContext, item: Item, number: int, failure: Failed) -> Problem:
    origin = item.want.origin
    return Problem(
        f"{failure.label}: {failure.message}",
        f"Task {item.want.spec['xid']!r} of {item.want.owner} fails check {number} of 5 "
        f"({CHECKS[number - 1]}): {failure.reason}",
        failure.resolution,
        location=_locate(context, Origin(origin.path, origin.document, failure.where)),
        parameters={
            "xid": item.want.spec["xid"],
            "batch": item.want.owner,
            "check": CHECKS[number - 1],
            "message": _seed_message(failure),
        },
    )


def bulk_report(
    processed: list[dict[str, Any]], unprocessed: list[dict[str, Any]]
) -> dict[str, Any]:
    """The bulk-task API's response: success, its message, the items processed and not."""
    return {
        "success": not unprocessed,
        "message": f"Processed {len(processed)} items, Failed to process {len(unprocessed)} items",
        "output": {"processedItems": processed, "unProcessedItems": unprocessed},
    }


def refused_report(report: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """The report of an apply that wrote nothing (refused, or failed): no item processed.

    Items that failed a check keep their own message; those that passed are not
    processed either, with `reason`, since none of them was created or updated.
    """
    items = report.get("output", {})
    refused = [
        {
            "message": f"Item not processed: the apply was refused ({reason})",
            "record": {"xid": item.get("record", {}).get("xid")},
        }
        for item in items.get("processedItems", [])
    ]
    return bulk_report([], [*items.get("unProcessedItems", []), *refused])


def targeted_report(report: Mapping[str, Any], selected: Callable[[str], bool]) -> dict[str, Any]:
    """The report of a targeted plan (`--target`): an item whose task `selected(xid)` does
    not keep is not processed, "outside --target"; those that failed a check keep their
    own message."""
    items = report.get("output", {})
    processed: list[dict[str, Any]] = []
    left_out: list[dict[str, Any]] = []
    for item in items.get("processedItems", []):
        xid = item.get("record", {}).get("xid")
        if isinstance(xid, str) and selected(xid):
            processed.append(item)
        else:
            left_out.append(
                {"message": "Item not processed: outside --target", "record": {"xid": xid}}
            )
    return bulk_report(processed, [*items.get("unProcessedItems", []), *left_out])


def _clashes(context: PlanContext, world: World) -> list[Problem]:
    """Two Fields, TaskTypes or Users with one id (or two TaskTypes with one name)."""
    problems = []
    for kind, index in world.indexes.items():
        for what, value, first, again, origin in index.clashes:
            if origin is None:  # a stored object meets a declared one: show the declared one
                first, again = again, first
                have = context.desired.get(ObjectKey(f"{kind}/{again}"))
                origin = have.origin if have is not None else None
            location = (
                _locate(
                    context, Origin(origin.path, origin.document, (*origin.yaml_path, "spec", what))
                )
                if origin is not None
                else None
            )
            problems.append(
                Problem(
                    f"Duplicate {kind} {what} {value!r}",
                    f"{kind}/{again} has the {what} {value!r} of {kind}/{first}, so a task's "
                    f"{{{what}}} reference could name either.",
                    f"Give {kind}/{again} {'an' if what == 'id' else 'a'} {what} of its own"
                    + (" (or leave id out: one is derived from its key)." if what == "id" else "."),
                    location=location,
                    parameters={"kind": kind, what: value, "objects": [first, again]},
                )
            )
    return problems


def _locate(context: PlanContext, origin: Origin) -> str:
    try:
        return context.locate(origin)
    except Exception:  # noqa: BLE001 - a location is a courtesy; the error must still be told
        return origin.path


def _processed(item: Item, context: PlanContext) -> dict[str, Any]:
    change = context.changes.get(item.key)
    action = change.action if change is not None else Action.NOOP
    status: Mapping[str, Any] = {}
    if change is not None and change.after is not None and change.after.status is not None:
        status = {**(item.have.status if item.have else {}), **change.after.status}
    elif item.have is not None:
        status = item.have.status
    return {
        "message": _MESSAGES.get(action, "Item got updated"),
        "record": {**item.want.spec, **item.resolved, **status},
    }


# -- check 3: duplicates ----------------------------------------------------------------


def _duplicates(items: list[Item], context: PlanContext, failed: Mapping[ObjectKey, Any]) -> Check:
    """Template item xids share the namespace of task xids (task xids are unique by key).

    Stored tasks count too, soft-deleted ones included: listing one again restores it.
    """
    tasks = {i.want.spec["xid"] for i in items} | {
        key.split("/", 1)[1] for key, have in context.stored.items() if have.kind == "Task"
    }
    first: dict[str, str] = {}

    def check(item: Item, world: World) -> list[Failed]:
        mine: dict[str, str] = {}
        failures = []
        for j, t in enumerate(item.want.spec.get("template", [])):
            xid = t["xid"]
            where = ("spec", "tasks", item.want.origin.yaml_path[-1], "template", j, "xid")
            other = f"Task/{xid}" if xid in tasks else first.get(xid) or mine.get(xid)
            if other is not None:
                failures.append(
                    Failed(
                        "ValidationError",
                        f"duplicate xid '{xid}'",
                        f"template item xid {xid!r} is also used by {other}; an xid is unique "
                        "across all batches and all template items.",
                        "Give the template item an xid of its own.",
                        where,
                    )
                )
                continue
            mine[xid] = f"the template of {item.key}"
        if not failures and item.key not in failed:
            first.update(mine)  # a task that fails a check is not created: it holds no xid
        return failures

    return check


# -- check 4: single active task -------------------------------------------------------


def _single_active(items: list[Item], world: World, failed: Mapping[ObjectKey, Any]) -> Check:
    """At most one open task per (TaskType, asset) where the TaskType says singleActiveTask.

    Only tasks that passed checks 2 and 3 hold a place; any task whose TaskType and asset
    resolved is checked against them.
    """
    holders: dict[tuple[str, str], ObjectKey] = {}
    # Tasks active in the store hold their place first, then soft-deleted ones listed
    # again, then new ones; each with the status it will have once applied.
    ordered = sorted(
        items,
        key=lambda i: (
            i.have is None,
            i.have is not None and i.have.state is not ObjectState.ACTIVE,
        ),
    )

    def status_of(item: Item) -> Mapping[str, Any]:
        if item.have is not None:
            # A stored task keeps its status (initial_status applies on create only); one
            # soft-deleted and listed again comes back undeleted, in the status it had.
            return {**item.have.status, "isDeleted": False}
        return {"status": "open", **(item.want.initial_status or {})}

    def claim(item: Item) -> tuple[str, str] | None:
        if item.task_type is None or "assetId" not in item.resolved:
            return None
        task_type = world.indexes["TaskType"].by_key.get(item.task_type, {})
        if not task_type.get("singleActiveTask") or not is_open(status_of(item)):
            return None
        return item.task_type, str(item.resolved["assetId"])

    claimed = False

    def check(item: Item, world: World) -> list[Failed]:
        nonlocal claimed
        if not claimed:  # the first call claims, in store-first order, for every item
            for other in ordered:
                if other.key in failed:
                    continue
                slot = claim(other)
                if slot is not None:
                    holders.setdefault(slot, other.key)
            claimed = True
        slot = claim(item)
        holder = holders.get(slot) if slot is not None else None
        if slot is None or holder is None or holder == item.key:
            return []
        asset = item.want.spec["asset"]
        shown = asset.get("xid") or asset.get("id")
        return [
            Failed(
                "ValidationError",
                f"an open task of taskType '{slot[0]}' already exists for asset '{shown}'",
                f"TaskType/{slot[0]} has singleActiveTask: true and {holder} is open for the "
                "same asset (statuses set in the store count).",
                f"Close {holder} first (fleetward tasks set-status {holder.split('/', 1)[1]} "
                "completed), or give this task another asset or TaskType.",
                ("spec", "tasks", item.want.origin.yaml_path[-1], "asset"),
            )
        ]

    return check
