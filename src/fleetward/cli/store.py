"""`fleetward store copy`: move a state store between a directory and PostgreSQL."""

from __future__ import annotations

import click

from fleetward.cli import output
from fleetward.cli.options import Duration
from fleetward.store import open_store
from fleetward.store.copying import copy_store


@click.group("store")
def store_group() -> None:
    """Manage the state store itself."""


@store_group.command("copy")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="DIR|URL",
    help="The store to copy: a state directory, or postgresql://USER[:PASSWORD]@HOST/DB.",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="DIR|URL",
    help="Where to copy it: a state directory, or postgresql://… (made if missing).",
)
@click.option("--force", is_flag=True, help="Replace what the target store holds.")
@click.option(
    "--lock-timeout",
    type=Duration(),
    default="10s",
    show_default=True,
    help="How long to wait for another process's lock on either store.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was copied as JSON.")
@click.pass_context
def copy_command(
    ctx: click.Context, source: str, target: str, force: bool, lock_timeout: float, as_json: bool
) -> None:
    """Copy everything a store holds — lineage, serial, history, objects, operations,
    rejections, undelivered notifications — into another store, e.g. from --state-dir to PostgreSQL.

    Stop daemons writing either store first. A target that holds anything is
    refused unless --force.
    """
    ctx.meta["json_output"] = as_json
    source_store, target_store = open_store(source), open_store(target)
    dump = copy_store(source_store, target_store, force=force, lock_timeout=lock_timeout)
    counts = {
        "objects": len(dump.objects),
        "history": len(dump.history),
        "operations": len(dump.operations),
        "rejections": len(dump.rejections),
        "notifications": len(dump.outbox),
    }
    if as_json:
        output.print_json(
            {
                "from": source_store.location,
                "to": target_store.location,
                "lineage": dump.meta.lineage,
                "serial": dump.meta.serial,
                **counts,
            }
        )
        return
    output.stdout.print(
        f"Copied {source_store.location} to {target_store.location}: lineage "
        f"{dump.meta.lineage}, serial {dump.meta.serial}, {counts['objects']} object(s), "
        f"{counts['history']} history entr{'y' if counts['history'] == 1 else 'ies'}, "
        f"{counts['operations']} operation(s), {counts['rejections']} rejection(s), "
        f"{counts['notifications']} undelivered notification(s)."
    )
