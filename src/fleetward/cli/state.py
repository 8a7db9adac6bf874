"""`state show` and `state history`: what the store holds, and what was applied when."""

from __future__ import annotations

import click
from rich.table import Table

from fleetward.cli import output
from fleetward.kinds.asset_rule import execution_progress
from fleetward.model import ObjectState, StoredObject
from fleetward.store import TinyDBStore

# Reading needs no lock, so only --state-dir of the state options applies here.
state_dir_option = click.option(
    "--state-dir",
    envvar="FLEETWARD_STATE_DIR",
    show_envvar=True,
    default=".fleetward",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory of the state store.",
)


@click.group("state")
def state_group() -> None:
    """Read the state store (never writes)."""


@state_group.command("show")
@state_dir_option
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only objects of this kind (repeatable), e.g. Asset.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the objects as JSON, spec and status included."
)
@click.pass_context
def show(ctx: click.Context, state_dir: str, kinds: tuple[str, ...], as_json: bool) -> None:
    """List the objects in the store: address, state, owner, generation, revision."""
    ctx.meta["json_output"] = as_json
    snapshot = TinyDBStore(state_dir).read()
    wanted = {k.lower() for k in kinds}
    objects = sorted(
        (o for o in snapshot.objects.values() if not wanted or o.kind.lower() in wanted),
        key=lambda o: (o.kind, o.key),
    )
    meta = snapshot.meta
    if as_json:
        output.print_json(
            {
                "lineage": meta.lineage,
                "serial": meta.serial,
                "lastAppliedRevision": meta.last_applied_revision,
                "objects": [{**o.to_doc(), "drifted": o.drifted} for o in objects],
            }
        )
        return
    if meta.lineage is None:
        output.stdout.print(f"The store at {state_dir} is empty: nothing has been applied yet.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ADDRESS", "STATE", "OWNER", "GEN", "REVISION", "UPDATED"):
        table.add_column(column)
    for o in objects:
        state = o.state.value + (" (drift)" if o.drifted else "")
        style = "" if o.state is ObjectState.ACTIVE else "dim"
        table.add_row(
            o.key,
            state,
            o.owner,
            str(o.generation),
            o.applied_revision[:12],
            o.updated_at,
            style=style,
        )
    output.stdout.print(table)
    _print_rule_progress(objects)
    output.stdout.print(
        f"\n{len(objects)} object(s); lineage {meta.lineage}, serial {meta.serial}, "
        f"last applied revision {meta.last_applied_revision}."
    )


def _print_rule_progress(objects: list[StoredObject]) -> None:
    """Asset rules' ExecutionProgress (seed 002), under the object table."""
    progress = execution_progress(objects)
    if not progress:
        return
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    for column in ("ASSET RULE", "STATE", "ERRORS", "STREAMS", "ASSETS", "LAST RUN"):
        table.add_column(column)
    for name, p in progress.items():
        table.add_row(
            name,
            str(p["State"]),
            str(p["ErrorInfo"]["ErrorCount"]),
            str(p["StreamsMatched"]),
            str(p["AssetsProduced"]),
            str(p["LastRunTime"] or "-"),
        )
    output.stdout.print()
    output.stdout.print(table)


@state_group.command("history")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
@click.pass_context
def history(ctx: click.Context, state_dir: str, as_json: bool) -> None:
    """List the applies recorded in the store, oldest first (the last 100 are kept)."""
    ctx.meta["json_output"] = as_json
    entries = TinyDBStore(state_dir).history()
    if as_json:
        output.print_json(entries)
        return
    if not entries:
        output.stdout.print(f"No applies recorded in {state_dir}.")
        return
    # Fits 80 columns: a relative time, a short revision and operation id; --json has all.
    output.print_table(
        ("SERIAL", "TIME", "REVISION", "CREATED", "UPDATED", "STOPPED", "DELETED", "OPERATION"),
        (
            (
                (
                    str(e.get("serial")),
                    output.when(e.get("time")),
                    output.short_revision(e.get("revision")),
                    *(str(e.get("counts", {}).get(a, 0)) for a in _ACTIONS),
                    _operation(str(e.get("operationId") or "-")),
                ),
                "",
            )
            for e in entries
        ),
    )


_ACTIONS = ("create", "update", "stop", "delete")


def _operation(recorded: str) -> str:
    """An apply's operation id, shortened as `operations list` shows it; another
    writer's label (`set-status XID`) as it is."""
    is_id = len(recorded) == 36 and recorded.count("-") == 4
    return output.short_id(recorded) if is_id else recorded
