"""What each page shows, gathered from the daemon's memory: the values templates render.

Every page reads the snapshot the last run left (the store is not read again per
request), the object index built once per snapshot, the operation log, and what
`LiveView` heard. Nothing here writes, and nothing renders HTML: that is the
templates' (autoescaped) work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fleetward.errors import FleetwardError, Problem
from fleetward.kinds import OBJECT_KINDS
from fleetward.model import Change, ObjectKey
from fleetward.operations import Operation, OperationState
from fleetward.rendering import Line, render_problem
from fleetward.rendering.text import SYMBOLS
from fleetward.rendering.workflow import render_dot, render_tree
from fleetward.store.describe import describe_object
from fleetward.web.index import Page
from fleetward.web.live import KeptPlan
from fleetward.web.sources import Verbatim, WebSources
from fleetward.web.views import (
    PLAN_LINES,
    HeldView,
    held_view,
    held_views,
    object_conditions,
    plan_lines,
    problem_views,
    revision_view,
)

CHANGED_LINKS = 50  # objects of an operation's plan linked to their pages
LAST_OPERATIONS = 10
OPERATIONS_PAGE = 50


def overview(src: WebSources) -> dict[str, Any]:
    ready, readiness = src.health.readiness()
    live = src.live
    last, read = live.last, live.read
    index = src.index()
    meta = index.snapshot.meta
    seen = read.revision if read is not None else None
    problems = read.problems if read is not None and read.manifest_errors else ()
    failure = last if last is not None and not last.succeeded else None
    # A run that failed on manifest errors shows them once, in their own section.
    shown_apart = failure is not None and failure is read and bool(problems)
    other = failure.problems if failure is not None and not shown_apart else ()
    try:
        operations, total = src.operations.query(ordering="-created_at", limit=LAST_OPERATIONS)
        log_error = None
    except FleetwardError as exc:
        operations, total, log_error = [], 0, _first(exc)
    planned = live.planned if live.planned is not None else src.health.planned
    suspension = planned.suspension if planned is not None else None
    return {
        "ready": ready,
        "reasons": readiness.get("reasons", []),
        "source": src.source(),
        "seen": revision_view(src.commits, seen.id if seen is not None else None),
        "applied": revision_view(src.commits, meta.last_applied_revision),
        "serial": meta.serial,
        "in_sync": bool(seen is not None and meta.last_applied_revision == seen.id),
        "counts": index.counts_table(),
        "total_objects": len(index.keys),
        "drift": src.health.counts.drift,
        "held": held_views(src.memos, planned),
        "suspension": suspension,
        "manifest_errors": problem_views(problems),
        "manifest_error_count": read.manifest_errors if read is not None else 0,
        "failure": failure,
        "failure_problems": problem_views(other),
        "operations": operations,
        "operation_total": total,
        "log_error": log_error,
        "last": last,
    }


OPERATION_FILTERS = ("state", "trigger", "revision")


def operations_page(src: WebSources, params: Mapping[str, str]) -> dict[str, Any]:
    state_text = params.get("state", "").strip().upper()
    state = OperationState[state_text] if state_text in OperationState.__members__ else None
    trigger = params.get("trigger", "").strip()
    revision = params.get("revision", "").strip().lower()
    number = _page_number(params.get("page"))
    try:
        every = src.operations.all()
        log_error = None
    except FleetwardError as exc:
        every, log_error = [], _first(exc)
    triggers = sorted({op.trigger for op in every})
    chosen = [
        op
        for op in reversed(every)  # newest first
        if (state is None or op.state is state)
        and (not trigger or op.trigger == trigger)
        and (not revision or (op.revision or "").startswith(revision))
    ]
    first = (number - 1) * OPERATIONS_PAGE
    return {
        "operations": chosen[first : first + OPERATIONS_PAGE],
        "total": len(chosen),
        "kept": len(every),
        "limit": src.operations.limit,
        "page": number,
        "pages": max(1, -(-len(chosen) // OPERATIONS_PAGE)),
        "states": [s.name for s in OperationState],
        "triggers": triggers,
        "filters": {"state": state.name if state else "", "trigger": trigger, "revision": revision},
        "log_error": log_error,
    }


def operation_page(src: WebSources, operation_id: str) -> dict[str, Any] | None:
    try:
        op = src.operations.get(operation_id)
    except FleetwardError as exc:
        return {"op": None, "log_error": _first(exc)}
    if op is None:
        return None
    kept = src.live.plan_of(operation_id)
    held = _held_of(src, op, kept)
    return {
        "op": op,
        "revision": revision_view(src.commits, op.revision),
        "plan": plan_lines(src.memos, kept.plan) if kept is not None else None,
        "changed": list(kept.plan.changes[:CHANGED_LINKS]) if kept is not None else [],
        "changed_total": len(kept.plan.changes) if kept is not None else 0,
        "plan_kept": kept is not None,
        "held": held,
        "errors": problem_views(op.errors),
        "error_count": op.error_count,
        "log_error": None,
    }


def _held_of(src: WebSources, op: Operation, kept: KeptPlan | None) -> HeldView | None:
    """The held part `op` carries, if it carries one (as the last plan split it)."""
    if kept is None or kept.part is None:
        return None
    plan, part = kept.plan, kept.part
    return src.memos.get(part, "held", lambda: held_view(plan, part, PLAN_LINES))


def objects_page(src: WebSources, params: Mapping[str, str]) -> dict[str, Any]:
    index = src.index()
    kind = params.get("kind", "").strip()
    kind = kind if kind in OBJECT_KINDS else ""
    query = params.get("q", "").strip()[:200]
    page: Page = index.page(kind or None, query, _page_number(params.get("page")))
    return {
        "page": page,
        "kind": kind,
        "q": query,
        "kinds": sorted(OBJECT_KINDS),
        "applied": index.snapshot.meta.last_applied_revision,
    }


def object_page(src: WebSources, address: str) -> dict[str, Any] | None:
    snapshot = src.snapshot()
    obj = snapshot.objects.get(ObjectKey(address))
    if obj is None:
        return None
    try:
        triggers = {op.operation_id: op.trigger for op in src.operations.all()}
    except FleetwardError:
        triggers = {}
    described = describe_object(obj, src.history(snapshot.meta.serial), triggers)
    live = src.live
    planned = live.planned
    return {
        "obj": obj,
        "described": described,
        "spec": Verbatim(pretty(obj.spec)),
        "status": Verbatim(pretty(obj.status)),
        "owner_path": live.documents.get(obj.owner),
        "owner_revision": revision_view(src.commits, live.documents_revision),
        "applied": revision_view(src.commits, obj.applied_revision),
        "conditions": object_conditions(src.memos, planned, obj, live.read),
        "workflow": obj.spec.get("name") if obj.kind == "Workflow" else None,
    }


def workflow_page(src: WebSources, name: str) -> dict[str, Any] | None:
    obj = src.snapshot().objects.get(ObjectKey(f"Workflow/{name}"))
    if obj is None:
        return None
    return {
        "obj": obj,
        "name": name,
        "graph": src.graphs.available,
        "tree": [(style, Verbatim(text)) for style, text in render_tree(obj.spec, obj.status)],
        "dot": Verbatim(render_dot(obj.spec)),
    }


def workflows_page(src: WebSources) -> dict[str, Any]:
    index = src.index()
    start, end = index.kind_range("Workflow")
    objects = [index.snapshot.objects[k] for k in index.keys[start:end]]
    return {"workflows": objects, "graph": src.graphs.available}


# -- helpers ---------------------------------------------------------------------------


def symbol(change: Change) -> str:
    """The plan's symbol of a change: + create, ~ update, ■ stop, - delete."""
    return SYMBOLS.get(change.action, " ")


def pretty(value: Any) -> str:
    if not value:
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def problem_lines(problem: Problem) -> list[Line]:
    return render_problem(problem)


def _page_number(text: str | None) -> int:
    return int(text) if text and text.isdigit() and 0 < int(text) < 1_000_000 else 1


def _first(exc: FleetwardError) -> Problem:
    return exc.problems[0] if exc.problems else Problem(str(exc), "", "")
