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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import referencing.exceptions

from fleetward.errors import Problem
from fleetward.kinds.base import PlanContext, as_uuid, derived_id
from fleetward.kinds.tasks.status import is_open
from fleetward.kinds.template_schema import (
    TemplateChecker,
    TemplateCheckers,
    TemplateCheckFailed,
)
from fleetward.model import (
    Action,
    DesiredObject,
    ObjectKey,
    ObjectState,
    Origin,
    StoredObject,
    canonical_json,
)

CHECKS = ("schema", "entity-resolution", "duplicate-check", "single-active-task", "template-schema")
_MESSAGES = {
    Action.CREATE: "Item got created",
    Action.UPDATE: "Item got updated",
    Action.NOOP: "Item is up to date",
}


class _Failed(Exception):
    """One item failed a check: the seed's message, and the fleetward problem around it."""

    def __init__(
        self, label: str, message: str, reason: str, resolution: str, where: tuple[str | int, ...]
    ) -> None:
        super().__init__(message)
        self.label = label
        self.message = message
        self.reason = reason
        self.resolution = resolution
        self.where = where


@dataclass
class _Index:
    """One reference kind: objects by key and by id (and by name, for TaskTypes)."""

    kind: str
    by_key: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    by_id: dict[str, str] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    id_of: dict[str, str] = field(default_factory=dict)  # key → id (declared or derived)
    # (field, value, the key that has it first, the key that has it again, where that is)
    clashes: list[tuple[str, str, str, str, Origin | None]] = field(default_factory=list)

    def add(self, ident: str, spec: Mapping[str, Any], origin: Origin | None = None) -> None:
        self.by_key[ident] = spec
        declared = spec.get("id")
        # A derived id is canonical already; parsing 100,000 of them again costs 0.5 s.
        own = as_uuid(str(declared)) if declared else derived_id(self.kind, ident)
        self.id_of[ident] = own
        first = self.by_id.setdefault(own, ident)
        if first != ident:
            self.clashes.append(("id", own, first, ident, origin))
        name = spec.get("name")
        if isinstance(name, str):
            first = self.by_name.setdefault(name, ident)
            # Only TaskTypes are referenced by name (a template item's `taskType: {name}`).
            if first != ident and self.kind == "TaskType":
                self.clashes.append(("name", name, first, ident, origin))


class _World:
    """What references may point at: the desired state, plus stored objects this plan keeps."""

    def __init__(self, context: PlanContext) -> None:
        self.indexes = {k: _Index(k) for k in ("Field", "TaskType", "User", "Asset")}
        self.steps: dict[str, str] = {}  # step id → the Workflow it belongs to
        self.versions: dict[str, int] = {}  # Workflow key → its version once this plan applies
        for key, obj in context.desired.items():
            self._add(key, obj.kind, obj.spec, obj.origin)
            if obj.kind == "Workflow":
                change = context.changes.get(key)
                after = change.after.status if change is not None and change.after else None
                have = context.stored.get(key)
                version = (after or (have.status if have is not None else None) or {}).get(
                    "version", 1
                )
                self.versions[key] = int(version)
        for key, have in context.stored.items():
            if key in context.desired or have.state is not ObjectState.ACTIVE:
                continue
            change = context.changes.get(key)
            if change is not None and change.action in (Action.STOP, Action.DELETE):
                continue  # leaving with this plan: nothing may point at it any more
            self._add(key, have.kind, have.spec)
            if have.kind == "Workflow":
                self.versions[key] = int(have.status.get("version", 1))

    def _add(
        self, key: str, kind: str, spec: Mapping[str, Any], origin: Origin | None = None
    ) -> None:
        index = self.indexes.get(kind)
        if index is not None:
            index.add(key.split("/", 1)[1], spec, origin)
        elif kind == "Workflow":
            for step in (*_step_ids(spec.get("steps", [])), *_step_ids(spec.get("rescue", []))):
                self.steps.setdefault(step, key)


def _step_ids(steps: Iterable[Any]) -> Iterator[str]:
    for step in steps:
        if isinstance(step, Mapping):
            if isinstance(step.get("id"), str):
                yield step["id"]
            for edge in step.get("next") or []:
                if isinstance(edge, Mapping):
                    yield from _step_ids(edge.get("steps") or [])


@dataclass
class _Item:
    key: ObjectKey
    want: DesiredObject
    have: StoredObject | None
    resolved: dict[str, Any] = field(default_factory=dict)
    task_type: str | None = None


# A check: every way one item fails it (none: it passes).
_Check = Callable[["_Item", "_World"], list[_Failed]]


def run(context: PlanContext, batch_kind: str) -> list[Problem]:
    """Check every task of the revision; fill the report; return one problem per failure."""
    items = [
        _Item(key, obj, context.stored.get(key))
        for key, obj in context.desired.items()
        if obj.kind == "Task"
    ]
    world = _World(context)
    clashes = _clashes(context, world)
    if not items and not any(d.kind == batch_kind for _, d in context.documents):
        return clashes
    items.sort(key=lambda i: (i.want.origin.path, i.want.origin.document, i.want.origin.yaml_path))
    # Each check runs over every item before the next starts: check 3 hands out template
    # xids and check 4 open-task slots only to items that passed everything before them.
    failed: dict[ObjectKey, list[tuple[int, _Failed]]] = {}
    stages: tuple[_Check, ...] = (
        _resolve,
        _duplicates(items, context, failed),
        _single_active(items, world, failed),
        _templates(world, context.caches.entry(TemplateCheckers)),
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


def _seed_message(failure: _Failed) -> str:
    return f"{failure.label} : {failure.message}"


def _problem(context: PlanContext, item: _Item, number: int, failure: _Failed) -> Problem:
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


def _clashes(context: PlanContext, world: _World) -> list[Problem]:
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


def _processed(item: _Item, context: PlanContext) -> dict[str, Any]:
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


# -- check 2: entity resolution ---------------------------------------------------------


def _resolve(item: _Item, world: _World) -> list[_Failed]:
    """Every reference of the task and its template items, each failure on its own."""
    spec = item.want.spec
    base = ("spec", "tasks", item.want.origin.yaml_path[-1])
    failures: list[_Failed] = []

    def attempt(find: Callable[..., str | None], *args: Any) -> str | None:
        try:
            return find(world, *args)
        except _Failed as exc:
            failures.append(exc)
            return None

    field_id = attempt(_ref, "Field", "field", spec["field"], (*base, "field"))
    asset_id = attempt(_asset, spec["asset"], (*base, "asset"))
    item.task_type = attempt(
        _ref_key, "TaskType", "taskType", spec["taskType"], (*base, "taskType")
    )
    if field_id is not None:
        item.resolved["fieldId"] = field_id
    if asset_id is not None:
        item.resolved["assetId"] = asset_id
    if item.task_type is not None:
        item.resolved["taskTypeId"] = _id_of(world, "TaskType", item.task_type)
    users = [
        attempt(_user, ref, (*base, "assigneeIds", j))
        for j, ref in enumerate(spec.get("assigneeIds", []))
    ]
    assignees = [_assignee(world, user) for user in users if user is not None]
    if assignees:
        item.resolved["assigneeIds"] = assignees
    attempt(_step, spec, base)
    for j, t in enumerate(spec.get("template", [])):
        where = (*base, "template", j)
        if "field" in t:
            attempt(_ref, "Field", "field", t["field"], (*where, "field"))
        if "asset" in t:
            attempt(_asset, t["asset"], (*where, "asset"))
        if "taskType" in t:
            attempt(_ref_key, "TaskType", "taskType", t["taskType"], (*where, "taskType"))
        attempt(_step, t, where)
    return failures


def _assignee(world: _World, user: str) -> dict[str, Any]:
    """An assignee as the seed's response shows it: the User's id, and its vendor's."""
    vendor = world.indexes["User"].by_key[user].get("vendorId")
    return {
        "assigneeId": _id_of(world, "User", user),
        "isDeleted": False,
        **({"vendorId": vendor} if vendor else {}),
    }


def _id_of(world: _World, kind: str, ident: str) -> str:
    return world.indexes[kind].id_of[ident]


def _ref(
    world: _World, kind: str, name: str, ref: Mapping[str, Any], where: tuple[str | int, ...]
) -> str:
    return _id_of(world, kind, _ref_key(world, kind, name, ref, where))


def _ref_key(
    world: _World, kind: str, name: str, ref: Mapping[str, Any], where: tuple[str | int, ...]
) -> str:
    """The key (xid) a `{id}` / `{xid}` (/ `{name}`) reference names; both must agree."""
    index = world.indexes[kind]
    found: list[tuple[str, str]] = []
    for how in ("id", "xid", "name"):
        value = ref.get(how)
        if not value:
            continue
        text = str(value)
        if how == "id":
            ident = index.by_id.get(as_uuid(text))
        elif how == "xid":
            ident = text if text in index.by_key else None
        else:
            ident = index.by_name.get(text)
        if ident is None:
            raise _Failed(
                "ValidationError",
                f"{name} with {how} '{value}' not found in data base",
                f"no {kind} with {how} {value!r} is declared in this revision or kept in the store.",
                (
                    "List the asset in a Fleet (spec.assets[].externalAssetId)"
                    if kind == "Asset"
                    else f"Declare the {kind} (a document of kind {kind})"
                )
                + f", or fix the reference's {how}.",
                (*where, how),
            )
        found.append((how, ident))
    if len({ident for _, ident in found}) > 1:
        described = " but ".join(f"{how} '{ref[how]}' is {kind}/{ident}" for how, ident in found)
        raise _Failed(
            "ValidationError",
            f"{name} reference is ambiguous: {described}",
            f"the reference's {' and '.join(h for h, _ in found)} name different {kind} objects.",
            "Keep one of them, or make both name the same object.",
            where,
        )
    return found[0][1]


def _asset(world: _World, ref: Mapping[str, Any], where: tuple[str | int, ...]) -> str:
    ident = _ref_key(world, "Asset", "asset", ref, where)
    declared = world.indexes["Asset"].by_key[ident].get("type")
    if declared is not None and declared != ref["type"]:
        how = "xid" if ref.get("xid") else "id"
        raise _Failed(
            "ValidationError",
            f"asset with {how} '{ref[how]}' and type '{ref['type']}' not found in data base",
            f"Asset/{ident} has type {declared!r}, not {ref['type']!r}.",
            f"Set asset.type: {declared}, or reference the asset you meant.",
            (*where, "type"),
        )
    return _id_of(world, "Asset", ident)


def _user(world: _World, ref: Mapping[str, Any], where: tuple[str | int, ...]) -> str:
    renamed = {"id": ref.get("id"), "xid": ref.get("userName")}
    try:
        return _ref_key(world, "User", "assignee", renamed, where)
    except _Failed as exc:
        exc.message = exc.message.replace("with xid", "with userName")
        exc.reason = exc.reason.replace("with xid", "with userName")
        exc.resolution = exc.resolution.replace("'s xid", "'s userName")
        exc.where = tuple("userName" if p == "xid" else p for p in exc.where)
        raise


def _step(world: _World, spec: Mapping[str, Any], where: tuple[str | int, ...]) -> None:
    """`workflowStepId` names a step of a Workflow; `workflowVersion`, one it has reached."""
    step = spec.get("workflowStepId")
    if not step:
        return
    workflow = world.steps.get(as_uuid(str(step)))
    if workflow is None:
        raise _Failed(
            "ValidationError",
            f"workflowStepId '{step}' not found in data base",
            f"no step of a Workflow declared in this revision or kept in the store has id {step!r}.",
            "Use the id of a workflow step (fleetward workflows show NAME --json lists them).",
            (*where, "workflowStepId"),
        )
    wanted = spec.get("workflowVersion")
    current = world.versions.get(workflow, 1)
    if wanted and int(str(wanted).lstrip("vV")) > current:
        raise _Failed(
            "ValidationError",
            f"workflowVersion '{wanted}' not found in data base",
            f"{workflow}, which has step {step}, is at version {current}.",
            f"Use a version up to v{current}, or leave workflowVersion out.",
            (*where, "workflowVersion"),
        )


# -- check 3: duplicates ----------------------------------------------------------------


def _duplicates(
    items: list[_Item], context: PlanContext, failed: Mapping[ObjectKey, Any]
) -> _Check:
    """Template item xids share the namespace of task xids (task xids are unique by key).

    Stored tasks count too, soft-deleted ones included: listing one again restores it.
    """
    tasks = {i.want.spec["xid"] for i in items} | {
        key.split("/", 1)[1] for key, have in context.stored.items() if have.kind == "Task"
    }
    first: dict[str, str] = {}

    def check(item: _Item, world: _World) -> list[_Failed]:
        mine: dict[str, str] = {}
        failures = []
        for j, t in enumerate(item.want.spec.get("template", [])):
            xid = t["xid"]
            where = ("spec", "tasks", item.want.origin.yaml_path[-1], "template", j, "xid")
            other = f"Task/{xid}" if xid in tasks else first.get(xid) or mine.get(xid)
            if other is not None:
                failures.append(
                    _Failed(
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


def _single_active(
    items: list[_Item], world: _World, failed: Mapping[ObjectKey, Any]
) -> _Check:
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

    def status_of(item: _Item) -> Mapping[str, Any]:
        if item.have is not None:
            # A stored task keeps its status (initial_status applies on create only); one
            # soft-deleted and listed again comes back undeleted, in the status it had.
            return {**item.have.status, "isDeleted": False}
        return {"status": "open", **(item.want.initial_status or {})}

    def claim(item: _Item) -> tuple[str, str] | None:
        if item.task_type is None or "assetId" not in item.resolved:
            return None
        task_type = world.indexes["TaskType"].by_key.get(item.task_type, {})
        if not task_type.get("singleActiveTask") or not is_open(status_of(item)):
            return None
        return item.task_type, str(item.resolved["assetId"])

    claimed = False

    def check(item: _Item, world: _World) -> list[_Failed]:
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
            _Failed(
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


# -- check 5: template schema -----------------------------------------------------------


def _templates(world: _World, checkers: TemplateCheckers) -> _Check:
    """Check 5; each TaskType's checker comes from `checkers` (the caller's, kept
    between runs: building one analyses the whole schema)."""
    checkers.start_run()
    # (TaskType, canonical data) already found valid: template data repeats a lot.
    valid: set[tuple[str, str]] = set()

    chosen: dict[str, TemplateChecker] = {}  # this run's, by TaskType

    def validator(task_type: str) -> TemplateChecker:
        if task_type not in chosen:
            schema = world.indexes["TaskType"].by_key[task_type].get("templateSchema") or {}
            chosen[task_type] = checkers.checker(schema)
        return chosen[task_type]

    def task_type_of(item: _Item, t: Mapping[str, Any]) -> str | None:
        """The TaskType a template item's data follows; None when check 2 found none."""
        if "taskType" not in t:
            return item.task_type
        try:
            return _ref_key(world, "TaskType", "taskType", t["taskType"], ())
        except _Failed:
            return None  # check 2 reported it

    def data_failure(
        t: Mapping[str, Any], j: int, task_type: str, base: tuple[str | int, ...]
    ) -> _Failed | None:
        data = t.get("data", {})
        seen = (task_type, canonical_json(data))
        if seen in valid:
            return None
        try:
            error = validator(task_type).first_error(data)
        except TemplateCheckFailed as exc:
            return _Failed(
                "SchemaError",
                f'"template[{j}].data" cannot be checked: {exc}',
                f"the templateSchema of TaskType/{task_type} cannot check data in "
                f"bounded time ({exc}).",
                "Fix the TaskType's templateSchema (fleetward validate says what is "
                "wrong with it), or change the item's data.",
                (*base, j, "data"),
            )
        except referencing.exceptions.Unresolvable as exc:
            return _Failed(
                "SchemaError",
                f'"template[{j}].data" cannot be checked: the templateSchema of '
                f"TaskType/{task_type} has a $ref that cannot be resolved",
                f"its $ref {getattr(exc, 'ref', '')!r} names no part of the schema.",
                "Fix the $ref in the TaskType's templateSchema (a $ref must name a part "
                "of the schema itself).",
                (*base, j, "data"),
            )
        if error is None:
            valid.add(seen)
            return None
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        return _Failed(
            "SchemaError",
            f'"template[{j}].data{path}" {error.message}',
            f"template item {t['xid']!r} does not match the templateSchema of "
            f"TaskType/{task_type}.",
            "Change the item's data to match the schema, or change the TaskType's "
            "templateSchema.",
            (*base, j, "data", *error.absolute_path),
        )

    def check(item: _Item, world: _World) -> list[_Failed]:
        template = item.want.spec.get("template", [])
        if not template:
            return []
        base = ("spec", "tasks", item.want.origin.yaml_path[-1], "template")
        xids = {t["xid"]: j for j, t in enumerate(template)}
        failures = []
        for j, t in enumerate(template):
            task_type = task_type_of(item, t)
            failure = data_failure(t, j, task_type, base) if task_type is not None else None
            if failure is not None:
                failures.append(failure)
            for relation in ("dependsOn", "sameAssigneeAs"):
                target = (t.get(relation) or {}).get("xid")
                if target is not None and (target not in xids or target == t["xid"]):
                    failures.append(
                        _Failed(
                            "ValidationError",
                            f"template[{j}].{relation} '{target}' not found in template",
                            f"{relation} names {target!r}, which is "
                            + (
                                "the item itself"
                                if target == t["xid"]
                                else "no item of this template"
                            )
                            + f"; its items are {', '.join(sorted(xids))}.",
                            f"Point {relation} at the xid of another item of the same template.",
                            (*base, j, relation, "xid"),
                        )
                    )
        # Only dependsOn can go round in a cycle that blocks; sameAssigneeAs A ↔ B names one
        # assignee for both, which is what it is for.
        cycle = _cycle(template, "dependsOn")
        if cycle:
            failures.append(
                _Failed(
                    "ValidationError",
                    f"template dependsOn cycle: {' → '.join(cycle)}",
                    f"following dependsOn from {cycle[0]!r} comes back to it, so none of these "
                    "items can go first.",
                    "Remove one dependsOn of the cycle.",
                    (*base, xids[cycle[0]], "dependsOn"),
                )
            )
        return failures

    return check


def _cycle(template: list[Mapping[str, Any]], relation: str) -> list[str]:
    """The first cycle of a relation in which each item names at most one other."""
    edges = {t["xid"]: (t.get(relation) or {}).get("xid") for t in template}
    done: set[str] = set()
    for start in edges:
        path: list[str] = []
        seen: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in done and node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = edges.get(node)
        if node is not None and node in seen:
            return [*path[seen[node] :], node]
        done.update(path)
    return []
