"""Plan → Markdown, for a pull-request comment (`plan --format markdown`). Pure.

Every value that comes from manifests, the store or a user (ids, field values,
refs, error texts) is data: it is escaped so that it cannot close a code span,
split a table row, start a list or inject HTML into the comment. A failed plan
is Markdown too, so a bot that posts standard output never posts an empty
comment.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleetward.errors import Problem
from fleetward.model import Action, Change, GuardVerdict, Plan, Revision
from fleetward.rendering.text import (
    DEFAULT_MAX_LINES,
    SYMBOLS,
    _value,
    held_count,
    kept_phrase,
    summary_line,
    targeted_warning,
)


@dataclass(frozen=True, slots=True)
class NamedRevision:
    """A revision as the user named it (`--ref`, `--base`) and, once read, what it is."""

    ref: str | None
    revision: Revision | None = None


def render_markdown(
    plan: Plan, max_lines: int = DEFAULT_MAX_LINES, base_ref: str | None = None
) -> str:
    """The plan as a comment: a heading naming the revisions, one table row per change
    (at most `max_lines`, 0: all), the policies, reports, guards and errors."""
    head = NamedRevision(plan.revision.ref, plan.revision)
    base = (
        NamedRevision(base_ref, Revision(plan.base, plan.revision.kind))
        if plan.base is not None
        else None
    )
    out = [_heading(head, base), ""]
    warning = targeted_warning(plan)
    if warning is not None:
        out += [f"> **{_text(warning)}**", ""]
    if not plan.changes and not plan.errors and plan.targeted:
        out.append(f"No changes to the targeted objects at {_name(head)}.")
    elif not plan.changes and not plan.errors and not plan.held:
        out.append(f"No changes. {_target(base)} matches revision {_name(head)}.")
    if plan.changes or plan.held:
        out += [f"**{summary_line(plan)}**", ""]
    if plan.changes:
        out += _table(plan.changes, max_lines)
    out += _held(plan)
    out += _policies(plan)
    for kind, report in sorted(plan.reports.items()):
        if isinstance(report, dict) and report.get("message"):
            out += ["", f"**{_text(kind)}:** {_text(str(report['message']))}."]
    for g in plan.guards:
        if g.verdict is GuardVerdict.BLOCKED:
            out += [
                "",
                f"> **Blocked by guard {_code(g.name)}**: {_text(g.message)} "
                f"(override: {_code(g.override)})",
            ]
    out += _problems(plan.errors, max_lines)
    return "\n".join(out) + "\n"


def render_markdown_problems(
    problems: Sequence[Problem],
    head: NamedRevision,
    base: NamedRevision | None = None,
    failed: Literal["head", "base"] | None = None,
    max_lines: int = DEFAULT_MAX_LINES,
) -> str:
    """A plan that could not be made: which revision failed, and every error (at most
    `max_lines`, 0: all)."""
    count = f"{len(problems)} error{'s' if len(problems) != 1 else ''}"
    where = ""
    if failed is not None:
        side = base if failed == "base" and base is not None else head
        role = f"the {failed} revision" if base is not None else "revision"
        where = f" in {role} {_name(side)}"
    out = [
        _heading(head, base),
        "",
        f"**No plan: {count}{where}. Nothing was planned or changed.**",
    ]
    out += _problems(problems, max_lines)
    return "\n".join(out) + "\n"


def _heading(head: NamedRevision, base: NamedRevision | None) -> str:
    if base is None:
        return f"### fleetward plan for {_name(head)}"
    return f"### fleetward plan from {_name(base)} to {_name(head)}"


def _target(base: NamedRevision | None) -> str:
    return "State" if base is None else f"Revision {_name(base)}"


def _name(named: NamedRevision) -> str:
    """`c560da5` (`HEAD~1`): the revision, and the ref when it says more than the id."""
    revision, ref = named.revision, named.ref
    if revision is None:
        return _code(ref or "?")
    shown = _code(revision.short)
    if ref and not revision.id.startswith(ref):
        shown += f" ({_code(ref)})"
    return shown


def _table(changes: Sequence[Change], max_lines: int) -> list[str]:
    shown = changes[:max_lines] if max_lines else changes
    out = ["| | object | action | reason | changes |", "|---|---|---|---|---|"]
    for change in shown:
        fields = (
            "<br>".join(
                f"{_code(d.path.removeprefix('spec.'))}: "
                f"{_code(_value(d.before))} → {_code(_value(d.after))}"
                for d in change.diff
            )
            if change.action is Action.UPDATE
            else ""
        )
        governed = f" (SyncPolicy {_code(change.policy)})" if change.policy else ""
        cells = (
            SYMBOLS[change.action],
            _code(change.address),
            change.action.value,
            _text(change.reason) + governed,
            fields,
        )
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    hidden = len(changes) - len(shown)
    if hidden:
        out += [
            "",
            f"… and {hidden} more change(s) not shown (--max-lines {max_lines}; "
            "use --max-lines 0 for all, or --json).",
        ]
    return out


def _policies(plan: Plan) -> list[str]:
    if not plan.policies:
        return []
    out = ["", "**Governed by SyncPolicies:**", ""]
    for name, info in plan.policies.items():
        window = info.get("window")
        when = ""
        if isinstance(window, dict):
            when = (
                f", window open until {_text(str(window.get('closesAt')))}"
                if window.get("open")
                else f", window opens {_text(str(window.get('opensAt') or 'never'))}"
            )
        out.append(
            f"- {_code(name)}: {info.get('changes', 0)} change(s); "
            f"{_text(str(info.get('schedule')))}, approval {_text(str(info.get('approval')))}"
            + when
            + (", **suspended**" if info.get("suspend") else "")
        )
    return out


def _held(plan: Plan) -> list[str]:
    """The documents failure isolation held back, one item each with its errors."""
    if not plan.held:
        return []
    out = ["", f"**Held back** ({held_count(plan.held)}, kept at their last applied version):", ""]
    for h in plan.held:
        where = f" at {_code(h.location)}" if h.location else ""
        out.append(f"- {_code(h.address)}{where}: {_text(h.because)}; {_text(kept_phrase(h))}")
        for p in h.errors:
            at = f" at {_code(p.location)}" if p.location else ""
            out.append(f"  - {_text(p.error)}{at}")
    return out


def _problems(problems: Sequence[Problem], max_lines: int) -> list[str]:
    shown = problems[:max_lines] if max_lines else problems
    out: list[str] = []
    for p in shown:
        out += ["", f"> **Error: {_text(p.error)}**  "]
        if p.location:
            out.append(f"> at {_code(p.location)}  ")
        out += [f"> Reason: {_text(p.reason)}  ", f"> *Resolution:* {_text(p.resolution)}"]
    hidden = len(problems) - len(shown)
    if hidden:
        out += [
            "",
            f"… and {hidden} more error(s) not shown (--max-lines {max_lines}; "
            "use --max-lines 0 for all, or --json).",
        ]
    return out


# -- escaping ---------------------------------------------------------------------------------

# Characters that start inline Markdown within a line (our prose never starts a line).
_PROSE_SPECIAL = re.compile(r"([\\`*_\[\]~])")
_BACKTICKS = re.compile(r"`+")


def _text(value: str) -> str:
    """Prose as written: HTML shown, not run; Markdown punctuation shown, not applied.

    `|` becomes an entity: a table splits cells on it before anything else.
    """
    flat = " ".join(value.splitlines())
    escaped = _PROSE_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))
    return escaped.replace("|", "&#124;")


def _code(value: str) -> str:
    """A code span that holds `value` whatever it contains: the fence is one backtick
    longer than any run inside it (CommonMark has no escapes within code spans)."""
    flat = " ".join(value.splitlines()) or " "
    longest = max((len(run) for run in _BACKTICKS.findall(flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat[0] in "` " or flat[-1] in "` " else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _cell(markdown: str) -> str:
    """A table cell: `|` splits cells even inside a code span unless escaped (GFM);
    prose has none left (`_text` writes it as an entity)."""
    return markdown.replace("|", "\\|")
