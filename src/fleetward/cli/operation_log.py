"""`operations list|show`: the runs recorded in the state directory's operation log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fleetward.cli import output
from fleetward.cli.options import max_lines_option, store_option
from fleetward.cli.state import state_dir_option
from fleetward.errors import FleetwardError, Problem, UsageError
from fleetward.operations import Operation, OperationState
from fleetward.rendering import plan_from_dict, render_plan, render_problem
from fleetward.store import open_configured
from fleetward.store.operations import ORDERINGS


class _State(click.ParamType):  # type: ignore[type-arg]
    name = "state"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> OperationState:
        if isinstance(value, OperationState):
            return value
        try:
            return OperationState.parse(str(value))
        except (KeyError, ValueError):
            self.fail(
                f"{value!r} is not an operation state; use a name or code: "
                + ", ".join(f"{s.name} ({s.value})" for s in OperationState),
                param,
                ctx,
            )


@click.command("list")
@state_dir_option
@store_option
@click.option(
    "--state", "state", type=_State(), help="Only operations in this state (name or code)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Show at most this many (0: all).",
)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many first.")
@click.option(
    "--ordering",
    type=click.Choice([p + o for o in ORDERINGS for p in ("-", "")]),
    default="-created_at",
    show_default=True,
    help="Order by a field; a leading - reverses (newest first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, as GET /v0/operations/ does.")
@click.pass_context
def list_operations(
    ctx: click.Context,
    state_dir: str,
    store: str | None,
    state: OperationState | None,
    limit: int,
    offset: int,
    ordering: str,
    as_json: bool,
) -> None:
    """List operations, newest first."""
    ctx.meta["json_output"] = as_json
    opened = open_configured(store, state_dir)
    log = opened.operations
    ops, total = log.query(state=state, ordering=ordering, limit=limit or None, offset=offset)
    if as_json:
        output.print_json(
            {
                "content": {
                    "count": total,
                    "limit": limit or None,
                    "offset": offset,
                    "results": [op.to_dict() for op in ops],
                }
            }
        )
        return
    if not ops:
        output.stdout.print(
            f"No operations recorded in {opened.location}."
            if total == 0
            else f"No operations match ({total} recorded)."
        )
        return
    # Fits 80 columns: a short id (show takes a prefix), a relative time, counts without
    # zeros; only the message wraps. show and --json carry every field in full.
    output.print_table(
        ("OPERATION", "STATE", "TRIGGER", "REVISION", "CREATED", "CHANGES", "MESSAGE"),
        (
            (
                (
                    output.short_id(op.operation_id),
                    op.state.name,
                    op.trigger,
                    output.short_revision(op.revision),
                    output.when(op.created_at),
                    _changes_compact(op),
                    op.message,
                ),
                _STYLE.get(op.state, ""),
            )
            for op in ops
        ),
    )
    output.stdout.print(f"\n{len(ops)} of {total} operation(s).")


@click.command("show")
@state_dir_option
@store_option
@click.argument("operation_id")
@max_lines_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print as JSON, as GET /v0/operations/ID/ does."
)
@click.pass_context
def show_operation(
    ctx: click.Context,
    state_dir: str,
    store: str | None,
    operation_id: str,
    max_lines: int,
    as_json: bool,
) -> None:
    """Show one operation: its transitions, plan summary and errors, and the plan a
    held (SCHEDULED) operation will apply.

    OPERATION_ID may be shortened to a unique prefix.
    """
    ctx.meta["json_output"] = as_json
    opened = open_configured(store, state_dir)
    log = opened.operations
    matches = [op for op in log.all() if op.operation_id.startswith(operation_id)]
    if len(matches) != 1:
        raise UsageError.one(
            f"No operation {operation_id!r}" if not matches else f"{operation_id!r} is ambiguous",
            f"{len(matches)} kept operations match."
            if matches
            else f"The log in {opened.location} keeps the last {log.limit} operations; "
            "none has this id.",
            "Pass a longer prefix or the full id; fleetward operations list shows them.",
            location=operation_id,
        )
    op = matches[0]
    if as_json:
        output.print_json({"content": op.to_dict()})
        return
    lines = [
        ("header", f"Operation {op.operation_id}"),
        ("", f"  type       {op.operation_type} ({op.schedule_type})"),
        ("", f"  state      {op.state.name} ({int(op.state)})"),
        ("", f"  trigger    {op.trigger}"),
        ("", f"  revision   {op.revision or '-'}" + (f" ({op.ref})" if op.ref else "")),
        ("", f"  changes    {_changes(op) or '-'}"),
        ("", f"  serial     {op.serial if op.serial is not None else '-'}"),
        ("", f"  message    {op.message or '-'}"),
        *_control_lines(op),
        ("", ""),
        ("header", "Transitions"),
    ]
    for t in op.transitions:
        lines.append(("", f"  {t.at}  {t.state.name:<12} {int(t.state):>3}  {t.message}".rstrip()))
    lines.extend(_pending_plan(op, state_dir, max_lines))
    output.print_lines(lines)
    if op.errors:
        output.print_lines([("", ""), ("header", f"Errors ({op.error_count})")])
        for e in op.errors:
            output.print_lines(
                render_problem(Problem.from_dict(e)),
                output.stdout,
            )


def _control_lines(op: Operation) -> list[tuple[str, str]]:
    """What a held or requested operation waits for."""
    lines: list[tuple[str, str]] = []
    if op.policy:
        lines.append(("", f"  policy     {op.policy}"))
    if op.waiting_for:
        lines.append(("", f"  waits for  {', '.join(op.waiting_for)}"))
    lines.extend(window_lines(op))
    if op.approval:
        by = op.approval.get("approved_by")
        approved = f"approved by {by} at {op.approval.get('approved_at')}" if by else "required"
        lines.append(("", f"  approval   {approved}"))
    if op.operation_device_query:
        query = json.dumps(dict(op.operation_device_query), sort_keys=True)
        lines.append(("", f"  query      {query}"))
    if op.arguments:
        lines.append(("", f"  arguments  {json.dumps(dict(op.arguments), sort_keys=True)}"))
    if op.deadline:
        lines.append(("", f"  deadline   {op.deadline}"))
    if op.ended_by:
        lines.append(("", f"  ended by   {op.ended_by}"))
    return lines


def _pending_plan(op: Operation, state_dir: str, max_lines: int) -> list[tuple[str, str]]:
    """The plan a held operation will apply, as `fleetward plan` prints it.

    The daemon keeps it in status/pending/<operation id>.json while the
    operation is SCHEDULED; an operation without one shows nothing.
    """
    path = Path(state_dir) / "status" / "pending" / f"{op.operation_id}.json"
    if op.state is not OperationState.SCHEDULED or not path.is_file():
        return []
    heading: list[tuple[str, str]] = [("", ""), ("header", "Pending plan")]
    try:
        plan = plan_from_dict(json.loads(path.read_bytes()), str(path))
    except (OSError, ValueError, FleetwardError) as exc:
        reason = exc.problems[0].reason if isinstance(exc, FleetwardError) else str(exc)
        return [*heading, ("error", f"  {path} cannot be read: {reason}")]
    return [*heading, *render_plan(plan, max_lines)]


_STYLE = {
    OperationState.SUCCESS: "green",
    OperationState.FAILURE: "red",
    OperationState.CANCELLED: "dim",
    OperationState.TIMEOUT: "red",
}


def _changes_compact(op: Operation) -> str:
    """The plan's counts without the zeros: "+2 ~1"; "0" for an empty plan, "-" for none."""
    s = op.plan_summary
    if not s:
        return "-"
    symbols = (("create", "+"), ("update", "~"), ("stop", "■"), ("delete", "-"))
    return " ".join(f"{sign}{s[k]}" for k, sign in symbols if s.get(k)) or "0"


def _changes(op: Operation) -> str:
    s = op.plan_summary
    if not s:
        return ""
    return f"+{s.get('create', 0)} ~{s.get('update', 0)} ■{s.get('stop', 0)} -{s.get('delete', 0)}"


def window_lines(op: Operation) -> list[tuple[str, str]]:
    """The window an operation may run in, as a line of `show` and of the requests' replies."""
    if not op.window:
        return []
    opens, closes = op.window.get("opens_at") or "-", op.window.get("closes_at") or "-"
    return [("", f"  window     {opens} → {closes}")]
