"""`state show` and `state history`: what the store holds, and what was applied when."""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

import click
from rich.table import Table
from ruamel.yaml import YAML

from fleetward.cli import output
from fleetward.cli.options import store_option
from fleetward.errors import FleetwardError, UsageError
from fleetward.kinds import OBJECT_KINDS
from fleetward.kinds.asset_rule import execution_progress
from fleetward.kinds.problems import did_you_mean
from fleetward.model import ObjectKey, ObjectState, StoredObject, StoreSnapshot
from fleetward.rollback import can_roll_back, current_revision
from fleetward.store import Pin, Store, open_configured
from fleetward.store.describe import describe_object

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


def read_store(state_dir: str, store_url: str | None = None) -> Store:
    """The store of a read command: a --state-dir that does not exist is an error.

    Read commands never create the directory, so without this a typo in
    --state-dir would read as "the store is empty" instead of as the typo.
    A --store database fleetward never wrote to is the same error.
    """
    store = open_configured(store_url, state_dir)
    if not store.exists() and store_url:
        raise UsageError.one(
            f"No fleetward store at {store.location}",
            "The database holds no fleetward tables, so there is no store to read. fleetward "
            "creates them at the first apply (or daemon start) with this --store.",
            "Check --store (or FLEETWARD_STORE), or apply the manifests first.",
            location=store.location,
        )
    if not store.exists():
        raise missing_state_dir(state_dir)
    return store


def missing_state_dir(state_dir: str) -> UsageError:
    """The error for a --state-dir that does not exist, where a command needs one (a typo
    must not read as an empty store, or as nothing to do)."""
    return UsageError.one(
        f"No state directory at {state_dir}",
        f"{state_dir} does not exist, so there is no store to read. fleetward makes it at "
        "the first apply (or daemon start) with this --state-dir.",
        "Check --state-dir (or FLEETWARD_STATE_DIR), or apply the manifests first.",
        location=state_dir,
    )


def _kind_names(kinds: tuple[str, ...]) -> set[str]:
    """--kind values as the kinds they name (any case); an unknown one is an error."""
    known = {name.lower(): name for name in OBJECT_KINDS}
    names = set()
    for kind in kinds:
        name = known.get(kind.strip().lower())
        if name is None:
            raise UsageError.one(
                f"Unknown kind {kind!r}",
                f"The store holds objects of the kinds {', '.join(sorted(OBJECT_KINDS))}.",
                did_you_mean(kind, sorted(OBJECT_KINDS), "Give one of them, e.g. --kind Asset."),
            )
        names.add(name)
    return names


@state_group.command("show")
@click.argument("address", required=False)
@state_dir_option
@store_option
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only objects of this kind (repeatable), e.g. Asset.",
)
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
    help="json and yaml include spec and status.",
)
@click.option("--json", "as_json", is_flag=True, help="The same as -o json.")
@click.pass_context
def show(
    ctx: click.Context,
    address: str | None,
    state_dir: str,
    store: str | None,
    kinds: tuple[str, ...],
    fmt: str,
    as_json: bool,
) -> None:
    """List the objects in the store, or describe the one at ADDRESS (e.g. Asset/TRK-1).

    ADDRESS shows its spec, status, owner and history: the applies that created
    it and last changed it.
    """
    fmt = "json" if as_json else fmt
    ctx.meta["json_output"] = fmt == "json"
    if address is not None and kinds:
        raise UsageError.one(
            "ADDRESS and --kind cannot be combined",
            "ADDRESS names one object; --kind filters the list of all of them.",
            f"Drop --kind to describe {address}, or ADDRESS to list the objects of a kind.",
        )
    wanted = _kind_names(kinds)
    found = read_store(state_dir, store)
    snapshot = found.read()
    if address is not None:
        _show_one(found, snapshot, address, fmt)
        return
    objects = sorted(
        (o for o in snapshot.objects.values() if not wanted or o.kind in wanted),
        key=lambda o: (o.kind, o.key),
    )
    meta = snapshot.meta
    if fmt != "text":
        _print_as(
            fmt,
            {
                "lineage": meta.lineage,
                "serial": meta.serial,
                "lastAppliedRevision": meta.last_applied_revision,
                "objects": [{**o.to_doc(), "drifted": o.drifted} for o in objects],
            },
        )
        return
    if meta.lineage is None:
        output.stdout.print(
            f"The store at {found.location} is empty: nothing has been applied yet."
        )
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


def _show_one(store: Store, snapshot: StoreSnapshot, address: str, fmt: str) -> None:
    obj = _find(snapshot, address)
    triggers = _triggers(store)
    described = describe_object(obj, store.history(), triggers)
    if fmt != "text":
        _print_as(fmt, described)
        return
    for line in object_lines(described):
        output.stdout.print(line)


def _find(snapshot: StoreSnapshot, address: str) -> StoredObject:
    kind, sep, ident = address.partition("/")
    if not sep or not kind or not ident:
        raise UsageError.one(
            f"{address!r} is not an object address",
            "An address is Kind/id, as state show lists them.",
            "Give one such as Asset/TRK-1 (fleetward state show lists them all).",
        )
    (name,) = _kind_names((kind,))
    key = ObjectKey(f"{name}/{ident}")
    found = snapshot.objects.get(key)
    if found is not None:
        return found
    same_kind = [k for k in snapshot.objects if k.startswith(f"{name}/")]
    raise UsageError.one(
        f"No object {key} in the store",
        f"The store holds {len(same_kind)} {name} object(s), none with the id {ident!r}.",
        did_you_mean(key, same_kind, f"fleetward state show --kind {name} lists them."),
        location=key,
    )


def object_lines(described: Mapping[str, Any]) -> list[str]:
    """Key/value lines, then spec and status as YAML: narrow, whatever the terminal."""
    lines = [
        str(described["address"]),
        f"  state:            {described['state']}" + (" (drift)" if described["drifted"] else ""),
        f"  owner:            {described['owner']}",
        f"  generation:       {described['generation']}",
        f"  applied revision: {described['appliedRevision']}",
        f"  created:          {described['createdAt']}",
        f"  updated:          {described['updatedAt']}",
        "history:",
    ]
    for event in described["history"]:
        label = "created" if event["event"] == "created" else "last changed"
        if event.get("serial") is None:
            where = "(before the applies the store keeps)"
        else:
            where = f"serial {event['serial']}, revision {str(event.get('revision'))[:12]}"
            if event.get("operationId"):
                who = f", {event['trigger']}" if event.get("trigger") else ""
                where += f"\n{'':18}operation {event['operationId']}{who}"
        lines.append(f"  {label + ':':16}{event['time']}  {where}")
    lines.extend(f"  {part}" for part in textwrap.wrap(str(described["historyNote"]), 76))
    for name in ("spec", "status"):
        value = described[name]
        if not value:
            lines.append(f"{name}: {{}}")
            continue
        lines.append(f"{name}:")
        lines.extend("  " + line for line in _yaml(value).splitlines())
    return lines


def _triggers(store: Store) -> dict[str, str]:
    """Operation id → what started it (cli, poll, webhook, …), from the operation log."""
    try:
        return {op.operation_id: op.trigger for op in store.operations.all()}
    except FleetwardError:
        return {}  # a damaged log: the history still names the operations


def _yaml(value: Any) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    buffer = io.StringIO()
    yaml.dump(value, buffer)
    return buffer.getvalue()


def _print_as(fmt: str, value: Any) -> None:
    if fmt == "json":
        output.print_json(value)
    else:
        sys.stdout.write(_yaml(value))
        sys.stdout.flush()


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
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
@click.pass_context
def history(ctx: click.Context, state_dir: str, store: str | None, as_json: bool) -> None:
    """List the applies recorded in the store, oldest first (the last 100 are kept).

    ROLLBACK says which applies fleetward rollback --to SERIAL can return to
    (`yes`), which one the store is at (`current`), the one it is pinned to, and
    which were targeted (`targeted`: part of a revision; after one, the store is at
    no revision wholly until a full apply).
    """
    ctx.meta["json_output"] = as_json
    found = read_store(state_dir, store)
    entries = found.history()
    current = current_revision(entries, found.meta().last_applied_revision)
    pin = found.pin()
    marked = [_rollback_marks(e, current, pin) for e in entries]
    if as_json:
        output.print_json(marked)
        return
    if not entries:
        output.stdout.print(f"No applies recorded in {found.location}.")
        return
    # Fits 80 columns: a relative time, a short revision and operation id; --json has all.
    output.print_table(
        ("SERIAL", "TIME", "REVISION", "CRE", "UPD", "STOP", "DEL", "ROLLBACK", "OPERATION"),
        (
            (
                (
                    str(e.get("serial")),
                    output.when(e.get("time")),
                    output.short_revision(e.get("revision")),
                    *(str(e.get("counts", {}).get(a, 0)) for a in _ACTIONS),
                    _rollback_cell(e),
                    _operation(str(e.get("operationId") or "-")),
                ),
                "",
            )
            for e in marked
        ),
    )
    if pin is not None:
        output.stdout.print(
            f"\nPinned to revision {pin.revision[:7]} (serial {pin.serial}) by {pin.by} at "
            f"{pin.at}; fleetward resume follows the tracked ref again."
        )


def _rollback_marks(entry: dict[str, Any], current: str | None, pin: Pin | None) -> dict[str, Any]:
    """The entry with `canRollBack` (an apply of a commit other than the current one) and
    `pinned` (the apply a rollback pinned the store to)."""
    able = can_roll_back(entry)
    marks = {"canRollBack": able and entry.get("revision") != current}
    if pin is not None and entry.get("serial") == pin.serial:
        marks["pinned"] = True
    return {**entry, **marks}


def _rollback_cell(entry: dict[str, Any]) -> str:
    if entry.get("pinned"):
        return "pinned"
    if entry.get("canRollBack"):
        return "yes"
    if entry.get("targeted"):
        return "targeted"
    return "current" if can_roll_back(entry) else "-"


_ACTIONS = ("create", "update", "stop", "delete")


def _operation(recorded: str) -> str:
    """An apply's operation id, shortened as `operations list` shows it; another
    writer's label (`set-status XID`) as it is."""
    is_id = len(recorded) == 36 and recorded.count("-") == 4
    return output.short_id(recorded) if is_id else recorded
