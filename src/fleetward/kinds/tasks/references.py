"""Task check 2, entity resolution, and what every task check is handed.

The checks run over `Item`s (a task of the revision, what the store has of it, and
what check 2 resolved) against the `World`: what a reference may point at — the
desired state, plus the stored objects this plan keeps. An item fails a check by
`Failed`: the seed's message, and the fleetward problem around it.

Check 2 resolves field, asset (and its type), taskType, assignees and
`workflowStepId` of the task and of its template items, each failure on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetward.kinds.base import PlanContext, as_uuid, derived_id
from fleetward.model import (
    Action,
    DesiredObject,
    ObjectKey,
    ObjectState,
    Origin,
    StoredObject,
)


class Failed(Exception):
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
class Item:
    key: ObjectKey
    want: DesiredObject
    have: StoredObject | None
    resolved: dict[str, Any] = field(default_factory=dict)
    task_type: str | None = None


# A check: every way one item fails it (none: it passes).
Check = Callable[["Item", "World"], list[Failed]]


@dataclass
class Index:
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


class World:
    """What references may point at: the desired state, plus stored objects this plan keeps."""

    def __init__(self, context: PlanContext) -> None:
        self.indexes = {k: Index(k) for k in ("Field", "TaskType", "User", "Asset")}
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
            for step in (*step_ids(spec.get("steps", [])), *step_ids(spec.get("rescue", []))):
                self.steps.setdefault(step, key)


def step_ids(steps: Iterable[Any]) -> Iterator[str]:
    for step in steps:
        if isinstance(step, Mapping):
            if isinstance(step.get("id"), str):
                yield step["id"]
            for edge in step.get("next") or []:
                if isinstance(edge, Mapping):
                    yield from step_ids(edge.get("steps") or [])


def resolve(item: Item, world: World) -> list[Failed]:
    """Every reference of the task and its template items, each failure on its own."""
    spec = item.want.spec
    base = ("spec", "tasks", item.want.origin.yaml_path[-1])
    failures: list[Failed] = []

    def attempt(find: Callable[..., str | None], *args: Any) -> str | None:
        try:
            return find(world, *args)
        except Failed as exc:
            failures.append(exc)
            return None

    field_id = attempt(_ref, "Field", "field", spec["field"], (*base, "field"))
    asset_id = attempt(_asset, spec["asset"], (*base, "asset"))
    item.task_type = attempt(ref_key, "TaskType", "taskType", spec["taskType"], (*base, "taskType"))
    if field_id is not None:
        item.resolved["fieldId"] = field_id
    if asset_id is not None:
        item.resolved["assetId"] = asset_id
    if item.task_type is not None:
        item.resolved["taskTypeId"] = id_of(world, "TaskType", item.task_type)
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
            attempt(ref_key, "TaskType", "taskType", t["taskType"], (*where, "taskType"))
        attempt(_step, t, where)
    return failures


def _assignee(world: World, user: str) -> dict[str, Any]:
    """An assignee as the seed's response shows it: the User's id, and its vendor's."""
    vendor = world.indexes["User"].by_key[user].get("vendorId")
    return {
        "assigneeId": id_of(world, "User", user),
        "isDeleted": False,
        **({"vendorId": vendor} if vendor else {}),
    }


def id_of(world: World, kind: str, ident: str) -> str:
    return world.indexes[kind].id_of[ident]


def _ref(
    world: World, kind: str, name: str, ref: Mapping[str, Any], where: tuple[str | int, ...]
) -> str:
    return id_of(world, kind, ref_key(world, kind, name, ref, where))


def ref_key(
    world: World, kind: str, name: str, ref: Mapping[str, Any], where: tuple[str | int, ...]
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
            raise Failed(
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
        raise Failed(
            "ValidationError",
            f"{name} reference is ambiguous: {described}",
            f"the reference's {' and '.join(h for h, _ in found)} name different {kind} objects.",
            "Keep one of them, or make both name the same object.",
            where,
        )
    return found[0][1]


def _asset(world: World, ref: Mapping[str, Any], where: tuple[str | int, ...]) -> str:
    ident = ref_key(world, "Asset", "asset", ref, where)
    declared = world.indexes["Asset"].by_key[ident].get("type")
    if declared is not None and declared != ref["type"]:
        how = "xid" if ref.get("xid") else "id"
        raise Failed(
            "ValidationError",
            f"asset with {how} '{ref[how]}' and type '{ref['type']}' not found in data base",
            f"Asset/{ident} has type {declared!r}, not {ref['type']!r}.",
            f"Set asset.type: {declared}, or reference the asset you meant.",
            (*where, "type"),
        )
    return id_of(world, "Asset", ident)


def _user(world: World, ref: Mapping[str, Any], where: tuple[str | int, ...]) -> str:
    renamed = {"id": ref.get("id"), "xid": ref.get("userName")}
    try:
        return ref_key(world, "User", "assignee", renamed, where)
    except Failed as exc:
        exc.message = exc.message.replace("with xid", "with userName")
        exc.reason = exc.reason.replace("with xid", "with userName")
        exc.resolution = exc.resolution.replace("'s xid", "'s userName")
        exc.where = tuple("userName" if p == "xid" else p for p in exc.where)
        raise


def _step(world: World, spec: Mapping[str, Any], where: tuple[str | int, ...]) -> None:
    """`workflowStepId` names a step of a Workflow; `workflowVersion`, one it has reached."""
    step = spec.get("workflowStepId")
    if not step:
        return
    workflow = world.steps.get(as_uuid(str(step)))
    if workflow is None:
        raise Failed(
            "ValidationError",
            f"workflowStepId '{step}' not found in data base",
            f"no step of a Workflow declared in this revision or kept in the store has id {step!r}.",
            "Use the id of a workflow step (fleetward workflows show NAME --json lists them).",
            (*where, "workflowStepId"),
        )
    wanted = spec.get("workflowVersion")
    current = world.versions.get(workflow, 1)
    if wanted and int(str(wanted).lstrip("vV")) > current:
        raise Failed(
            "ValidationError",
            f"workflowVersion '{wanted}' not found in data base",
            f"{workflow}, which has step {step}, is at version {current}.",
            f"Use a version up to v{current}, or leave workflowVersion out.",
            (*where, "workflowVersion"),
        )
