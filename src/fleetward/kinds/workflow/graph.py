"""The graph checks of a workflow: ids, edges, reachability, inescapable loops.

How a workflow runs (what the checks assume, and the README documents): after a
step ends with a status (OK, SKIP, KO, TIMEOUT) and maybe a code, the first
`next` edge whose status (empty: any) and code (empty: any) match is taken — to
`stepId`, into its inline `steps`, or to the end (`stop`). With no matching
edge, a KO goes to the first rescue step (if any) and any other status falls
through to the following step of the same list; the end of an inline list
continues after the step that opened it; the end of `steps` or `rescue` ends
the workflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetward.errors import Problem
from fleetward.kinds.problems import PathProblem, YamlPath, did_you_mean

END = "(end)"
STATUSES = ("OK", "SKIP", "KO", "TIMEOUT")


@dataclass(frozen=True, slots=True)
class _Node:
    step: Mapping[str, Any]
    path: YamlPath
    cont: str  # where execution continues when no edge matches and the status is not KO
    in_rescue: bool


class Graph:
    """A normalised workflow spec as a graph of step ids (END for the end)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.nodes: dict[str, _Node] = {}
        self.order: list[str] = []
        self._problems: list[PathProblem] = []
        rescue = spec.get("rescue") or []
        self.rescue_first = rescue[0]["id"] if rescue else None
        self._add(spec["steps"], ("spec", "steps"), END, in_rescue=False)
        self._add(rescue, ("spec", "rescue"), END, in_rescue=True)

    def _add(
        self, steps: list[Mapping[str, Any]], path: YamlPath, after: str, in_rescue: bool
    ) -> None:
        for i, step in enumerate(steps):
            cont = steps[i + 1]["id"] if i + 1 < len(steps) else after
            here = (*path, i)
            if step["id"] in self.nodes:
                first = self.nodes[step["id"]]
                self._problems.append(
                    (
                        here,
                        False,
                        Problem(
                            f"Duplicate step id {step['id']}",
                            f"Step {_name(step)} has the id of step {_name(first.step)} "
                            f"({_render(first.path)}); ids are unique across steps, inline steps and rescue.",
                            "Give one of them another id, or another name if the ids are derived from names.",
                            parameters={"id": step["id"]},
                        ),
                    )
                )
                continue
            self.nodes[step["id"]] = _Node(step, here, cont, in_rescue)
            self.order.append(step["id"])
            for j, edge in enumerate(step.get("next", [])):
                if edge.get("steps"):
                    self._add(edge["steps"], (*here, "next", j, "steps"), cont, in_rescue)

    # -- outcomes --------------------------------------------------------------

    def _target(self, edge: Mapping[str, Any]) -> str:
        if edge.get("stepId"):
            return str(edge["stepId"]) if edge["stepId"] in self.nodes else END
        if edge.get("steps"):
            return str(edge["steps"][0]["id"])
        return END

    def targets(self, step_id: str) -> set[str]:
        """Every step (or END) this step can hand over to."""
        node = self.nodes[step_id]
        edges = node.step.get("next", [])
        out = set()
        for status in STATUSES:
            edge = next(
                (e for e in edges if not e.get("code") and e.get("status") in (None, status)), None
            )
            if edge is not None:
                out.add(self._target(edge))
            elif status == "KO" and self.rescue_first and not node.in_rescue:
                out.add(self.rescue_first)
            else:
                out.add(node.cont)
        out.update(self._target(e) for e in edges if e.get("code"))
        return out

    # -- checks ----------------------------------------------------------------

    def problems(self) -> Iterable[PathProblem]:
        yield from self._problems
        yield from self._edges()
        if self._problems:
            # With duplicate ids the graph is not what the author meant (a fall-through to
            # a duplicate lands on its namesake): reachability and loops would be noise.
            return
        edges = {sid: self.targets(sid) for sid in self.order}
        reach = {sid: _reachable(sid, edges) for sid in self.order}
        first = self.order[0] if self.order else None
        for sid in self.order:
            if first is not None and sid not in reach[first] and sid != first:
                node = self.nodes[sid]
                yield (
                    node.path,
                    False,
                    Problem(
                        f"Step {_name(node.step)} never runs",
                        "No edge, fall-through or unhandled KO leads to it from the first step.",
                        "Point a next edge at it (stepId), move it, or remove it.",
                        parameters={"step": node.step["id"]},
                    ),
                )
        yield from self._loops(edges, reach)

    def _edges(self) -> Iterable[PathProblem]:
        for sid in self.order:
            node = self.nodes[sid]
            seen: dict[tuple[str, str], int] = {}
            for j, edge in enumerate(node.step.get("next", [])):
                here = (*node.path, "next", j)
                chosen = [k for k in ("stepId", "steps", "stop") if edge.get(k)]
                if len(chosen) > 1:
                    yield (
                        here,
                        False,
                        Problem(
                            f"Edge of step {_name(node.step)} has {' and '.join(chosen)}",
                            "A next edge goes to one place: a stepId, its inline steps, or the end (stop: true).",
                            f"Keep one of {', '.join(chosen)}.",
                        ),
                    )
                elif not chosen:
                    yield (
                        here,
                        False,
                        Problem(
                            f"Edge of step {_name(node.step)} goes nowhere",
                            "A next edge needs a stepId, inline steps, or stop: true.",
                            "Add the step to go to, or stop: true to end the workflow.",
                        ),
                    )
                target = edge.get("stepId")
                if target and target not in self.nodes:
                    known = ", ".join(_name(self.nodes[s].step) for s in self.order)
                    names = [
                        str(self.nodes[s].step.get("name"))
                        for s in self.order
                        if self.nodes[s].step.get("name")
                    ]
                    yield (
                        here,
                        False,
                        Problem(
                            f"Edge of step {_name(node.step)} points at unknown step {target!r}",
                            f"stepId names a step id or name of this workflow; the steps are: {known}.",
                            did_you_mean(
                                str(target), names, "Fix the stepId (a step's id, or its name)."
                            ),
                            parameters={"stepId": target},
                        ),
                    )
                outcome = (edge.get("status", ""), edge.get("code", ""))
                if outcome in seen:
                    shown = f"status {outcome[0] or '(any)'}, code {outcome[1] or '(any)'}"
                    yield (
                        here,
                        False,
                        Problem(
                            f"Two edges of step {_name(node.step)} match the same outcome",
                            f"Edges {seen[outcome]} and {j} both match {shown}; only the first would ever run.",
                            "Remove one edge, or give them different status or code.",
                        ),
                    )
                seen.setdefault(outcome, j)

    def _loops(
        self, edges: Mapping[str, set[str]], reach: Mapping[str, set[str]]
    ) -> Iterable[PathProblem]:
        done: set[str] = set()
        for sid in self.order:
            if sid in done:
                continue
            component = {o for o in self.order if o in reach[sid] and sid in reach[o]}
            done |= component
            looping = len(component) > 1 or sid in edges[sid]
            if not looping or any(t not in component for c in component for t in edges[c]):
                continue
            members = [o for o in self.order if o in component]
            node = self.nodes[members[0]]
            names = " → ".join(_name(self.nodes[m].step) for m in members)
            yield (
                node.path,
                False,
                Problem(
                    "Loop with no way out",
                    f"Steps {names} lead only to each other: whatever their status or code, "
                    "the workflow would never leave them.",
                    "Give one of the steps an edge that leaves the loop (to another step, or stop: true).",
                    parameters={"steps": members},
                ),
            )


def _reachable(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(edges.get(start, ()))
    while stack:
        current = stack.pop()
        if current in seen or current == END:
            continue
        seen.add(current)
        stack.extend(edges.get(current, ()))
    return seen


def _name(step: Mapping[str, Any]) -> str:
    return repr(step.get("name") or step["id"])


def _render(path: YamlPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
