"""Plan → Markdown, for a pull-request comment (`plan --format markdown`)."""

from __future__ import annotations

from fleetward.model import Action, GuardVerdict, Plan
from fleetward.rendering.text import SYMBOLS, _value, summary_line

_MAX_ROWS = 500


def render_markdown(plan: Plan) -> str:
    out = [f"### fleetward plan for `{plan.revision.short}`", ""]
    if not plan.changes and not plan.errors:
        out.append(f"No changes. State matches revision `{plan.revision.short}`.")
    if plan.changes:
        out += [
            f"**{summary_line(plan)}**",
            "",
            "| | object | action | reason | changes |",
            "|---|---|---|---|---|",
        ]
        for change in plan.changes[:_MAX_ROWS]:
            fields = (
                "<br>".join(
                    f"`{d.path.removeprefix('spec.')}`: {_value(d.before)} → {_value(d.after)}".replace(
                        "|", "\\|"
                    )
                    for d in change.diff
                )
                if change.action is Action.UPDATE
                else ""
            )
            governed = f" (SyncPolicy `{change.policy}`)" if change.policy else ""
            out.append(
                f"| {SYMBOLS[change.action]} | `{change.address}` | {change.action.value} "
                f"| {change.reason}{governed} | {fields} |"
            )
        if len(plan.changes) > _MAX_ROWS:
            out.append(f"\n…and {len(plan.changes) - _MAX_ROWS} more changes.")
    if plan.policies:
        out += ["", "**Governed by SyncPolicies:**", ""]
        for name, info in plan.policies.items():
            window = info.get("window")
            when = ""
            if isinstance(window, dict):
                when = (
                    f", window open until {window.get('closesAt')}"
                    if window.get("open")
                    else f", window opens {window.get('opensAt') or 'never'}"
                )
            out.append(
                f"- `{name}`: {info.get('changes', 0)} change(s); {info.get('schedule')}, "
                f"approval {info.get('approval')}{when}"
                + (", **suspended**" if info.get("suspend") else "")
            )
    for kind, report in sorted(plan.reports.items()):
        if isinstance(report, dict) and report.get("message"):
            out += ["", f"**{kind}:** {report['message']}."]
    for g in plan.guards:
        if g.verdict is GuardVerdict.BLOCKED:
            out += [
                "",
                f"> **Blocked by guard `{g.name}`**: {g.message} (override: `{g.override}`)",
            ]
    for p in plan.errors:
        out += [
            "",
            f"> **Error: {p.error}** ({p.location})  ",
            f"> {p.reason}  ",
            f"> *Resolution:* {p.resolution}",
        ]
    return "\n".join(out) + "\n"
