"""Renderers: Plan and problems → text lines, JSON, Markdown. Pure."""

from fleetward.rendering.json import plan_from_dict, plan_to_dict
from fleetward.rendering.markdown import render_markdown
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
    "plan_from_dict",
    "plan_to_dict",
    "render_markdown",
    "render_plan",
    "render_problem",
    "summary_line",
]
