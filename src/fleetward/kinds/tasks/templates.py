"""Task check 5, template: each template item against its TaskType.

Each item's `data` must match its TaskType's `templateSchema` (checked in bounded
time by `template_schema`; data of an item whose TaskType did not resolve is left
to check 2), and `dependsOn` / `sameAssigneeAs` must name items of the same template,
without a `dependsOn` cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import referencing.exceptions

from fleetward.kinds.tasks.references import Check, Failed, Item, World, ref_key
from fleetward.kinds.template_schema import (
    TemplateChecker,
    TemplateCheckers,
    TemplateCheckFailed,
)
from fleetward.model import canonical_json


def template_check(world: World, checkers: TemplateCheckers) -> Check:
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

    def task_type_of(item: Item, t: Mapping[str, Any]) -> str | None:
        """The TaskType a template item's data follows; None when check 2 found none."""
        if "taskType" not in t:
            return item.task_type
        try:
            return ref_key(world, "TaskType", "taskType", t["taskType"], ())
        except Failed:
            return None  # check 2 reported it

    def data_failure(
        t: Mapping[str, Any], j: int, task_type: str, base: tuple[str | int, ...]
    ) -> Failed | None:
        data = t.get("data", {})
        seen = (task_type, canonical_json(data))
        if seen in valid:
            return None
        try:
            error = validator(task_type).first_error(data)
        except TemplateCheckFailed as exc:
            return Failed(
                "SchemaError",
                f'"template[{j}].data" cannot be checked: {exc}',
                f"the templateSchema of TaskType/{task_type} cannot check data in "
                f"bounded time ({exc}).",
                "Fix the TaskType's templateSchema (fleetward validate says what is "
                "wrong with it), or change the item's data.",
                (*base, j, "data"),
            )
        except referencing.exceptions.Unresolvable as exc:
            return Failed(
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
        return Failed(
            "SchemaError",
            f'"template[{j}].data{path}" {error.message}',
            f"template item {t['xid']!r} does not match the templateSchema of "
            f"TaskType/{task_type}.",
            "Change the item's data to match the schema, or change the TaskType's templateSchema.",
            (*base, j, "data", *error.absolute_path),
        )

    def check(item: Item, world: World) -> list[Failed]:
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
                        Failed(
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
                Failed(
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
