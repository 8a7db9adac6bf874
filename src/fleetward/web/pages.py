"""What each page shows, gathered from the daemon's memory: the values templates render.

Every page reads the snapshot the last run left (the store is not read again per
request), the object index built once per snapshot, the operation log, and what
`LiveView` heard. Nothing here writes, and nothing renders HTML: that is the
templates' (autoescaped) work.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from fleetward.decisions import Decision, Part, waiting_message
from fleetward.errors import FleetwardError, Problem
from fleetward.kinds import OBJECT_KINDS
from fleetward.model import Change, ObjectKey, Plan, StoredObject, StoreSnapshot
from fleetward.observe.health import Health
from fleetward.observe.status import conditions_of
from fleetward.operations import Operation, OperationState
from fleetward.rendering import Line, render_plan, render_problem
from fleetward.rendering.text import SYMBOLS
from fleetward.rendering.workflow import render_dot, render_tree
from fleetward.runs import RunReport
from fleetward.store import OperationStore, Store
from fleetward.store.describe import describe_object
from fleetward.web.commits import Commit, CommitReader
from fleetward.web.graph import GraphRenderer
from fleetward.web.index import IndexCache, ObjectIndex, Page
from fleetward.web.live import KeptPlan, LiveView

PLAN_LINES = 500  # object lines of an operation's plan; the rest is summarised
HELD_LINES = 20  # object lines per held part on the overview
CHANGED_LINKS = 50  # objects of an operation's plan linked to their pages
LAST_OPERATIONS = 10
OPERATIONS_PAGE = 50
MAX_ERRORS = 100
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#@]*@")


T = TypeVar("T")
_MEMO_KEPT = 64  # results at most, of live owners


class Memo:
    """Results computed once per (frozen) owner and name: a plan of 100,000 changes is
    rendered and indexed once, not per request.

    Only results of owners the daemon still shows are kept (`live`: the reports and
    plans the live view holds): each new result drops those of owners it let go,
    so an old plan is not held in memory by what was rendered of it.
    """

    def __init__(self, live: Callable[[], Iterable[object]]) -> None:
        self._live = live
        self._kept: OrderedDict[tuple[int, str], tuple[object, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, owner: object, name: str, compute: Callable[[], T]) -> T:
        """`compute()`, once per `owner` and `name` while `owner` is live."""
        key = (id(owner), name)
        with self._lock:
            found = self._kept.get(key)
            if found is not None and found[0] is owner:
                self._kept.move_to_end(key)
                return cast(T, found[1])
        value = compute()
        live = {id(o) for o in self._live()}
        with self._lock:
            self._kept[key] = (owner, value)
            for stale in [k for k, (o, _) in self._kept.items() if id(o) not in live]:
                del self._kept[stale]
            while len(self._kept) > _MEMO_KEPT:
                self._kept.popitem(last=False)
        return value

    def owners(self) -> list[object]:
        """The owners whose results are kept, oldest first."""
        with self._lock:
            return [owner for owner, _ in self._kept.values()]


class Verbatim(str):
    """Text shown as stored (a manifest's values): `scrub` leaves it alone."""

    __slots__ = ()


@dataclass
class WebSources:
    """What the pages read, handed in by the composition root."""

    health: Health
    operations: OperationStore
    store: Store
    live: LiveView
    # The source as pages show it: url (credentials removed), ref, path.
    source: Callable[[], Mapping[str, str]]
    commits: CommitReader
    graphs: GraphRenderer = field(default_factory=GraphRenderer)
    indexes: IndexCache = field(default_factory=IndexCache)
    memos: Memo = field(init=False)
    _history: tuple[int, list[dict[str, Any]]] | None = None
    _history_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.memos = Memo(self.live_owners)

    def live_owners(self) -> list[object]:
        """What the pages may still show: the reports the live view and health hold,
        and the plans kept for operations, with their decisions and held parts."""
        owners: list[object] = []
        for report in (self.live.last, self.live.read, self.live.planned, self.health.planned):
            if report is not None:
                owners += [report, report.plan, report.decision]
                owners += report.decision.held if report.decision is not None else ()
        for kept in self.live.kept_plans():
            owners += [kept.plan, kept.decision, kept.part]
        return [owner for owner in owners if owner is not None]

    def snapshot(self) -> StoreSnapshot:
        """The store as the last run left it; before any run, as the store reads now."""
        for report in (self.live.last, self.health.last):
            if report is not None and report.store is not None:
                return report.store
        return self.store.read()

    def index(self) -> ObjectIndex:
        return self.indexes.get(self.snapshot())

    def prepare(self, report: RunReport) -> None:
        """Build what the next page will need after `report` (run off the request path)."""
        if report.store is not None:
            self.indexes.build(report.store)
            self.commits.get(report.store.meta.last_applied_revision)
        self.commits.get(report.revision.id if report.revision else None)
        held_views(self.memos, report)
        kept = self.live.plan_of(report.operation.operation_id)
        if kept is not None:
            plan_lines(self.memos, kept.plan)
        if report.plan is not None:
            _changes_of(self.memos, report)

    def history(self, serial: int) -> list[dict[str, Any]]:
        """The store's history as of `serial` (read once per serial, not per page)."""
        with self._history_lock:
            if self._history is not None and self._history[0] == serial:
                return self._history[1]
        entries = self.store.history()
        with self._history_lock:
            self._history = (serial, entries)
        return entries


def public_url(url: str) -> str:
    """A source URL fit to show: no user-info (user:token@), no query, no fragment."""
    text = _USERINFO.sub(r"\1", url)
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        text = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return text


def scrub(value: Any) -> Any:
    """What every template expression outputs: text with any URL's credentials removed,
    but for a manifest's values (`Verbatim`), which are shown as the store holds them."""
    if isinstance(value, str) and "://" in value and not isinstance(value, Verbatim):
        return _USERINFO.sub(r"\1", value)
    return value


# -- pieces several pages share ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevisionView:
    sha: str
    short: str
    commit: Commit | None


def revision_view(commits: CommitReader, revision: str | None) -> RevisionView | None:
    if not revision:
        return None
    short = revision[:7] if not revision.startswith("sha256:") else revision[:19]
    return RevisionView(revision, short, commits.get(revision))


def plan_lines(memos: Memo, plan: Plan, max_lines: int = PLAN_LINES) -> list[Line]:
    """The plan as `fleetward plan` prints it: (style, text) lines; styles become CSS classes."""
    return memos.get(plan, f"lines:{max_lines}", lambda: render_plan(plan, max_lines))


def part_lines(plan: Plan, part: Part, max_lines: int = HELD_LINES) -> list[Line]:
    """What a held part would change, rendered like a plan of those changes only."""
    policies = {k: v for k, v in plan.policies.items() if k == part.policy}
    narrowed = replace(
        plan, changes=part.changes, guards=(), errors=(), reports={}, policies=policies
    )
    return render_plan(narrowed, max_lines)


@dataclass(frozen=True, slots=True)
class HeldView:
    policy: str | None
    waiting_for: tuple[str, ...]
    why: str
    changes: int
    operation_id: str | None
    lines: list[Line]
    owners: list[tuple[str, int]]  # owner document → changes of it held


def held_views(
    memos: Memo, report: RunReport | None, max_lines: int = HELD_LINES
) -> list[HeldView]:
    if report is None or report.decision is None or report.plan is None:
        return []
    plan, decision = report.plan, report.decision
    return memos.get(
        decision,
        f"held:{max_lines}",
        lambda: [held_view(plan, part, max_lines) for part in decision.held],
    )


def held_view(plan: Plan, part: Part, max_lines: int) -> HeldView:
    owners: dict[str, int] = {}
    for change in part.changes:
        owners[change.owner] = owners.get(change.owner, 0) + 1
    return HeldView(
        part.policy,
        part.waiting_for,
        waiting_message(part),
        len(part.changes),
        part.operation_id,
        part_lines(plan, part, max_lines),
        sorted(owners.items()),
    )


def problem_views(problems: Sequence[Problem | Mapping[str, Any]]) -> list[Problem]:
    return [
        p if isinstance(p, Problem) else Problem.from_dict(p) for p in list(problems)[:MAX_ERRORS]
    ]


# -- the pages ------------------------------------------------------------------------


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


def object_conditions(
    memos: Memo, planned: RunReport | None, obj: StoredObject, read: RunReport | None
) -> list[dict[str, Any]]:
    """Ready / Reconciling / Stalled, as the status files would say them for this object."""
    found = _conditions_in(memos, planned, obj.key) if planned is not None else []
    if found:
        return found
    # Reconciled since the store last wrote it: a poll that changed nothing (its own time
    # moves every poll) is no transition.
    at = obj.updated_at
    revision = read.revision.id if read is not None and read.revision else obj.applied_revision
    ok = {"lastTransitionTime": at, "observedRevision": revision}
    message = f"The store holds the spec of revision {obj.applied_revision[:12]}."
    return [
        {"type": "Ready", "status": "True", "reason": "Reconciled", "message": message, **ok},
        {"type": "Reconciling", "status": "False", "reason": "Reconciled", "message": "", **ok},
        {"type": "Stalled", "status": "False", "reason": "Reconciled", "message": "", **ok},
    ]


def _conditions_in(memos: Memo, report: RunReport, address: str) -> list[dict[str, Any]]:
    """The object's conditions after `report`, from the report narrowed to its one change
    (the status files' rules, without walking the whole plan per request)."""
    changes = _changes_of(memos, report)
    entry = changes.get(address)
    if entry is None or report.plan is None:
        return []
    change, part, due = entry
    decision = report.decision
    if decision is not None:
        decision = Decision(
            parts=(replace(part, changes=(change,)),) if part is not None else (),
            due=(change,) if due else (),
            out_of_scope=decision.out_of_scope,
        )
    narrowed = replace(report, plan=replace(report.plan, changes=(change,)), decision=decision)
    return conditions_of(narrowed, change)


def _changes_of(memos: Memo, report: RunReport) -> dict[str, tuple[Change, Part | None, bool]]:
    """Each change of the report's plan by address: the held part holding it (None: not
    held), and whether the run's decision had it due; built once per plan."""

    def build() -> dict[str, tuple[Change, Part | None, bool]]:
        held: dict[str, Part] = {}
        decision = report.decision
        for part in decision.held if decision is not None else ():
            for change in part.changes:
                held[change.address] = part
        due = {c.address for c in decision.due} if decision is not None else set()
        plan = report.plan
        changes = plan.changes if plan is not None else ()
        return {c.address: (c, held.get(c.address), c.address in due) for c in changes}

    return memos.get(report, "changes", build)


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
