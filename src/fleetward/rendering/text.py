"""Plan and problems → styled lines for a terminal (the CLI maps styles to colours).

Pure: returns `(style, text)` pairs and imports no terminal library.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from fleetward.errors import Problem
from fleetward.model import ABSENT, Action, Change, GuardVerdict, HeldDocument, Plan

Line = tuple[str, str]  # (style, text)

SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.STOP: "■",
}
DEFAULT_MAX_LINES = 200


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    return (
        f"Plan: {s['create']} to create, {s['update']} to update, "
        f"{s['stop']} to stop, {s['delete']} to delete."
    ) + (f" {held_count(plan.held)} held back." if plan.held else "")


def held_count(held: tuple[HeldDocument, ...]) -> str:
    return f"{len(held)} document{'s' if len(held) != 1 else ''}"


def kept_phrase(held: HeldDocument) -> str:
    """What holding a document keeps, in words."""
    if not held.kept:
        return "nothing applied yet: its objects are not created"
    n = len(held.kept)
    return f"keeps {n} object{'s' if n != 1 else ''} at the last applied version"


def render_plan(plan: Plan, max_lines: int = DEFAULT_MAX_LINES) -> list[Line]:
    lines: list[Line] = []
    if not plan.changes and plan.held:
        lines.append(("ok", f"No changes to apply at revision {plan.revision.short}."))
        lines.append(("", ""))
        lines.extend(_held(plan.held, max_lines))
        lines.append(("summary", summary_line(plan)))
    elif not plan.changes:
        if plan.targeted and not plan.errors:
            lines.append(("ok", f"No changes to the targeted objects at {plan.revision.short}."))
        elif not plan.errors:
            lines.append(("ok", f"No changes. State matches revision {plan.revision.short}."))
    else:
        lines.append(
            (
                "header",
                f"fleetward will perform the following actions at revision {plan.revision.short}:",
            )
        )
        lines.append(("", ""))
        lines.extend(_changes(plan.changes, max_lines))
        lines.extend(_held(plan.held, max_lines))
        lines.append(("summary", summary_line(plan)))
        lines.extend(_policies(plan))
    warning = targeted_warning(plan)
    if warning is not None:
        lines.append(("", ""))
        lines.append(("blocked", warning))
    for kind, report in sorted(plan.reports.items()):
        message = report.get("message") if isinstance(report, dict) else None
        if message:
            style = "ok" if report.get("success") else "blocked"
            lines.append((style, f"{kind}: {message}."))
    blocked = [g for g in plan.guards if g.verdict is not GuardVerdict.PASSED]
    if blocked:
        lines.append(("", ""))
    for g in blocked:
        if g.verdict is GuardVerdict.BLOCKED:
            lines.append(
                ("blocked", f"Guard {g.name}: BLOCKED. {g.message} Override with {g.override}.")
            )
        else:
            lines.append(("dim", f"Guard {g.name}: overridden by {g.override}. {g.message}"))
    if plan.errors:
        lines.append(("", ""))
        for problem in plan.errors:
            lines.extend(render_problem(problem))
    return lines


def targeted_warning(plan: Plan) -> str | None:
    """What a targeted plan leaves the store as: not equal to its revision. None for a
    whole plan, and for targets that leave no change out (the plan is the whole one)."""
    if not plan.targeted or not plan.left_out:
        return None
    return (
        f"Warning: targeted plan ({', '.join(plan.targeted)}): {plan.left_out} other change(s) "
        f"of revision {plan.revision.short} are left out, so the store will not equal the "
        "revision. A full plan (or the daemon's next run) converges the rest."
    )


def _changes(changes: Iterable[Change], max_lines: int) -> list[Line]:
    by_kind: dict[str, list[Change]] = {}
    for c in changes:
        by_kind.setdefault(c.kind, []).append(c)
    lines: list[Line] = []
    shown = 0
    hidden = 0
    for kind, group in by_kind.items():
        width = max(len(c.address) for c in group[: max_lines or None])
        counts = Counter(c.action for c in group)
        parts = ", ".join(f"{counts[a]} to {a.value}" for a in SYMBOLS if counts[a])
        lines.append(("kind", f"{kind} ({parts})"))
        for change in group:
            if max_lines and shown >= max_lines:
                hidden += 1
                continue
            shown += 1
            lines.append(
                (
                    change.action.value,
                    f"  {SYMBOLS[change.action]} {change.address:<{width}}  {change.action.value}"
                    f" ({change.reason})"
                    + (
                        f"  [{change.owner}]"
                        if change.action is Action.CREATE and change.owner != change.address
                        else ""
                    )
                    + (f"  policy {change.policy}" if change.policy is not None else ""),
                )
            )
            # A stop shows what else it marks (a task's soft delete: status.isDeleted).
            shown_diff = (
                change.diff
                if change.action is Action.UPDATE
                else [d for d in change.diff if d.path.startswith("status.")]
            )
            for d in shown_diff:
                path = d.path.removeprefix("spec.")
                lines.append(("diff", f"      {path}: {_value(d.before)} → {_value(d.after)}"))
        lines.append(("", ""))
    if hidden:
        lines.append(
            (
                "dim",
                f"… and {hidden} more change(s) not shown (--max-lines {max_lines}; "
                "use --max-lines 0 for all, or --json).",
            )
        )
        lines.append(("", ""))
    return lines


def _held(held: tuple[HeldDocument, ...], max_lines: int) -> list[Line]:
    """The documents failure isolation held back: where, why, their errors, what is kept."""
    if not held:
        return []
    lines: list[Line] = [
        ("kind", f"Held back ({held_count(held)}, kept at their last applied version):")
    ]
    for h in held:
        where = f"  {h.location}" if h.location else ""
        lines.append(("blocked", f"  ! {h.address}{where}: {h.because}; {kept_phrase(h)}"))
        for problem in h.errors:
            at = f" at {problem.location}" if problem.location else ""
            lines.append(("diff", f"      {problem.error}{at}"))
        shown = h.kept[:max_lines] if max_lines else h.kept
        lines.extend(("dim", f"      = {key}") for key in shown[:10])
        if len(shown) > 10 or len(shown) < len(h.kept):
            lines.append(("dim", f"      … and {len(h.kept) - min(len(shown), 10)} more kept"))
    lines.append(("", ""))
    return lines


def _policies(plan: Plan) -> list[Line]:
    """Which SyncPolicies govern changes of the plan, and when they let them apply."""
    if not plan.policies:
        return []
    lines: list[Line] = [("", ""), ("kind", "Governed by SyncPolicies:")]
    for name, info in plan.policies.items():
        parts = [str(info.get("schedule", "IMMEDIATE")), f"approval {info.get('approval', 'auto')}"]
        window = info.get("window")
        if isinstance(window, dict):
            if window.get("open"):
                parts.append(f"window open until {window.get('closesAt')}")
            elif window.get("opensAt"):
                parts.append(f"window closed, opens {window.get('opensAt')}")
            else:
                parts.append("window never opens again")
        if info.get("suspend"):
            parts.append("SUSPENDED")
        lines.append(("dim", f"  {name}: {info.get('changes', 0)} change(s); " + ", ".join(parts)))
    return lines


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def render_problem(problem: Problem) -> list[Line]:
    lines: list[Line] = [("error", f"Error: {problem.error}")]
    if problem.location:
        lines.append(("location", f"  --> {problem.location}"))
    if problem.snippet:
        lines.extend(("snippet", "  " + s) for s in problem.snippet.splitlines())
    lines.append(("", f"  Reason: {problem.reason}"))
    lines.append(("", f"  Resolution: {problem.resolution}"))
    items = problem.parameters.get("items") if problem.parameters else None
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                ident = item.get("externalAssetId", "?")
                for err in item.get("errors", []):
                    lines.append(("dim", f"    - {ident}: isValid=false: {err}"))
    lines.append(("", ""))
    return lines
