"""A workflow's steps and edges as a readable tree, or as a Graphviz DOT document. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fleetward.rendering.text import Line

_EDGE_COLOURS = {"OK": "darkgreen", "KO": "red3", "SKIP": "gray40", "TIMEOUT": "darkorange3"}


def _names(spec: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}

    def walk(steps: list[Mapping[str, Any]]) -> None:
        for step in steps:
            out[step["id"]] = step.get("name") or step["id"][:8]
            for edge in step.get("next", []):
                walk(edge.get("steps", []))

    walk(spec["steps"])
    walk(spec.get("rescue", []))
    return out


def _condition(edge: Mapping[str, Any]) -> str:
    parts = [edge.get("status") or "any status"]
    if edge.get("code"):
        parts.append(f"code {edge['code']}")
    return ", ".join(parts)


def render_tree(spec: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> list[Line]:
    names = _names(spec)
    state = "draft" if spec.get("draft") else "disabled" if spec.get("disabled") else "active"
    version = f"version {status['version']}, " if status and "version" in status else ""
    lines: list[Line] = [
        ("header", f"Workflow {spec['name']} ({state}; {version}id {spec['id']})"),
    ]
    for key in ("description", "country", "schema"):
        if spec.get(key):
            lines.append(("dim", f"  {key}: {spec[key]}"))

    def steps(items: list[Mapping[str, Any]], indent: str) -> None:
        for n, step in enumerate(items, 1):
            lines.append(("kind", f"{indent}{n}. {names[step['id']]}  [{step['action']}]"))
            if step.get("summary"):
                lines.append(("dim", f"{indent}   {step['summary']}"))
            if step.get("config"):
                lines.append(
                    ("dim", f"{indent}   config: {json.dumps(step['config'], ensure_ascii=False)}")
                )
            for edge in step.get("next", []):
                if edge.get("stepId"):
                    target = f"go to {names.get(edge['stepId'], edge['stepId'])}"
                elif edge.get("stop"):
                    target = "stop"
                else:
                    target = "run:"
                lines.append(("update", f"{indent}   on {_condition(edge)} → {target}"))
                if edge.get("steps"):
                    steps(edge["steps"], indent + "      ")

    lines.append(("", "steps:"))
    steps(spec["steps"], "  ")
    if spec.get("rescue"):
        lines.append(("", "rescue (on a KO no edge handles):"))
        steps(spec["rescue"], "  ")
    return lines


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(spec: Mapping[str, Any]) -> str:
    """A DOT digraph: boxes for steps (dashed in rescue), edges labelled by status/code,
    dotted fall-through edges, dashed red edges for a KO that goes to the rescue steps."""
    names = _names(spec)
    rescue_first = spec["rescue"][0]["id"] if spec.get("rescue") else None
    out = [
        f"digraph {_quote(spec['name'])} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  start [shape=circle, label="", width=0.25, style=filled, fillcolor=black];',
        '  end [shape=doublecircle, label="", width=0.2, style=filled, fillcolor=black];',
    ]

    def steps(items: list[Mapping[str, Any]], after: str, rescue: bool) -> None:
        for i, step in enumerate(items):
            style = ', style="rounded,dashed"' if rescue else ""
            label = _quote(f"{names[step['id']]}\n{step['action']}")
            out.append(f"  {_quote(step['id'])} [label={label}{style}];")
            following = items[i + 1]["id"] if i + 1 < len(items) else after
            edges = step.get("next", [])
            for edge in edges:
                target = (
                    edge["stepId"]
                    if edge.get("stepId")
                    else edge["steps"][0]["id"]
                    if edge.get("steps")
                    else "end"
                )
                colour = _EDGE_COLOURS.get(edge.get("status", ""), "black")
                out.append(
                    f"  {_quote(step['id'])} -> {_quote(target) if target != 'end' else 'end'} "
                    f"[label={_quote(_condition(edge))}, color={colour}, fontcolor={colour}];"
                )
                if edge.get("steps"):
                    steps(edge["steps"], following, rescue)
            uncoded = [e.get("status") for e in edges if not e.get("code")]
            if None in uncoded:
                continue  # an edge for any status: nothing falls through
            to_rescue = rescue_first is not None and not rescue and "KO" not in uncoded
            target = _quote(following) if following != "end" else "end"
            otherwise = "otherwise, not KO" if to_rescue else "otherwise"
            out.append(
                f"  {_quote(step['id'])} -> {target} [style=dotted, label={_quote(otherwise)}];"
            )
            if to_rescue:
                out.append(
                    f"  {_quote(step['id'])} -> {_quote(str(rescue_first))} "
                    '[style=dashed, color=red3, fontcolor=red3, label="KO"];'
                )

    first = spec["steps"][0]["id"]
    out.append(f"  start -> {_quote(first)};")
    steps(spec["steps"], "end", rescue=False)
    if spec.get("rescue"):
        out.append(f"  {{ rank=sink; {_quote(spec['rescue'][0]['id'])}; }}")
        steps(spec["rescue"], "end", rescue=True)
    out.append("}")
    return "\n".join(out) + "\n"
