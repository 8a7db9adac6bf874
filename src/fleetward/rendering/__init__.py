"""Renderers: Plan and problems → text lines, JSON, Markdown. Pure."""

from fleetward.rendering.json import plan_from_dict, plan_to_dict, plan_to_stream, write_json
from fleetward.rendering.markdown import NamedRevision, render_markdown, render_markdown_problems
from fleetward.rendering.text import (
    DEFAULT_MAX_LINES,
    Line,
    render_plan,
    render_problem,
    summary_line,
)

__all__ = [
    "DEFAULT_MAX_LINES",
    "Line",
    "NamedRevision",
    "plan_from_dict",
    "plan_to_dict",
    "plan_to_stream",
    "render_markdown",
    "render_markdown_problems",
    "render_plan",
    "render_problem",
    "summary_line",
    "write_json",
]
