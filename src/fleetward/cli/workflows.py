"""`workflows show NAME [--graph]`: a workflow's steps and edges, as a tree or as DOT."""

from __future__ import annotations

import sys
from typing import Any

import click

from fleetward.cli import output
from fleetward.cli.options import StateOptions, source_options, state_options
from fleetward.errors import UsageError
from fleetward.kinds.workflow import derive_status
from fleetward.model import DesiredObject, ObjectKey, StoredObject
from fleetward.pipeline import SourceOptions, resolve, with_state_caches
from fleetward.rendering.workflow import render_dot, render_tree


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

    The version shown is the store's when the store holds this definition;
    otherwise a note says so, and which version applying it would give.
    """
    if graph and as_json:
        raise UsageError.one(
            "--graph conflicts with --json",
            "--graph prints a Graphviz DOT document and --json prints JSON; a command prints "
            "one format.",
            "Drop one of the two flags.",
        )
    ctx.meta["json_output"] = as_json
    desired = resolve(with_state_caches(sources, state.state_dir))
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
    stored = state.open_store().read().objects.get(key)
    status, applied = _status_at_revision(workflow, stored)
    if as_json:
        output.print_json({"spec": workflow.spec, "status": status, "applied": applied})
        return
    if applied:
        output.print_lines(render_tree(workflow.spec, status))
        return
    # The header's version is the store's only when the store holds this definition.
    lines = render_tree(workflow.spec, None)
    held = (
        f"the store holds version {stored.status.get('version')} of another definition"
        if stored is not None
        else "the store does not hold it"
    )
    note = f"  not applied: {held}; applying it makes it version {status['version']}"
    lines.insert(1, ("dim", note))
    output.print_lines(lines)


def _status_at_revision(
    workflow: DesiredObject, stored: StoredObject | None
) -> tuple[dict[str, Any], bool]:
    """The status (hash, version) of the definition read at --ref, and whether the store
    holds that definition. Its version is the store's when it does; otherwise the one
    an apply of it would derive (the store's version + 1, or 1 for a new workflow)."""
    applied = stored is not None and stored.spec_hash == workflow.spec_hash
    if stored is not None and applied:
        return dict(stored.status), True
    return derive_status(workflow.spec, stored.status if stored else None, True), False
