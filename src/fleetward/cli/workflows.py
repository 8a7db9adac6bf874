"""`workflows show NAME [--graph]`: a workflow's steps and edges, as a tree or as DOT."""

from __future__ import annotations

import sys

import click

from fleetward.cli import output
from fleetward.cli.options import StateOptions, source_options, state_options
from fleetward.errors import UsageError
from fleetward.model import ObjectKey
from fleetward.pipeline import SourceOptions, resolve
from fleetward.rendering.workflow import render_dot, render_tree
from fleetward.store import TinyDBStore


@click.group("workflows")
def workflows_group() -> None:
    """Inspect Workflow definitions."""


@workflows_group.command("show")
@click.argument("name")
@source_options
@state_options
@click.option(
    "--graph", is_flag=True, help="Print a Graphviz DOT document instead (pipe it to `dot -Tsvg`)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the normalised spec (ids filled in) as JSON."
)
@click.pass_context
def show(
    ctx: click.Context,
    name: str,
    sources: SourceOptions,
    state: StateOptions,
    graph: bool,
    as_json: bool,
) -> None:
    """Show workflow NAME as declared at --ref: steps, edges, rescue.

    The version shown is the one applied to the store, if any.
    """
    ctx.meta["json_output"] = as_json
    desired = resolve(sources)
    key = ObjectKey(f"Workflow/{name}")
    workflow = desired.objects.get(key)
    if workflow is None:
        known = sorted(k.split("/", 1)[1] for k in desired.objects if k.startswith("Workflow/"))
        raise UsageError.one(
            f"No workflow named {name!r} at revision {desired.revision.short}",
            f"The workflows declared there are: {', '.join(known) or '(none)'}.",
            "Give the metadata.name of a Workflow document.",
            location=key,
        )
    if graph:
        sys.stdout.write(render_dot(workflow.spec))
        return
    stored = TinyDBStore(state.state_dir).read().objects.get(key)
    if as_json:
        output.print_json(
            {"spec": workflow.spec, "status": dict(stored.status) if stored else None}
        )
        return
    output.print_lines(render_tree(workflow.spec, stored.status if stored else None))
