"""`operations list` and `operations show`: the runs recorded in the state directory."""

from __future__ import annotations

import click
from rich.table import Table

from fleetward.cli import output
from fleetward.cli.state import state_dir_option
from fleetward.errors import Problem, UsageError
from fleetward.operations import Operation, OperationState
from fleetward.rendering import render_problem
from fleetward.store.operations import ORDERINGS, OperationLog


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


@click.group("operations")
def operations_group() -> None:
    """Read the operation log: one Operation per reconcile (daemon runs and applies)."""


@operations_group.command("list")
@state_dir_option
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
    state: OperationState | None,
    limit: int,
    offset: int,
    ordering: str,
    as_json: bool,
) -> None:
    """List operations, newest first."""
    ctx.meta["json_output"] = as_json
    log = OperationLog(state_dir)
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
            f"No operations recorded in {state_dir}."
            if total == 0
            else f"No operations match ({total} recorded)."
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in (
        "OPERATION",
        "STATE",
        "CODE",
        "TRIGGER",
        "REVISION",
        "CREATED",
        "CHANGES",
        "MESSAGE",
    ):
        table.add_column(column, overflow="fold")
    for op in ops:
        table.add_row(
            op.operation_id,
            op.state.name,
            str(int(op.state)),
            op.trigger,
            (op.revision or "")[:12],
            op.created_at,
            _changes(op),
            op.message,
            style=_STYLE.get(op.state, ""),
        )
    output.stdout.print(table)
    output.stdout.print(f"\n{len(ops)} of {total} operation(s).")


@operations_group.command("show")
@state_dir_option
@click.argument("operation_id")
@click.option(
    "--json", "as_json", is_flag=True, help="Print as JSON, as GET /v0/operations/ID/ does."
)
@click.pass_context
def show_operation(ctx: click.Context, state_dir: str, operation_id: str, as_json: bool) -> None:
    """Show one operation: its transitions, plan summary and errors.

    OPERATION_ID may be shortened to a unique prefix.
    """
    ctx.meta["json_output"] = as_json
    log = OperationLog(state_dir)
    matches = [op for op in log.all() if op.operation_id.startswith(operation_id)]
    if len(matches) != 1:
        raise UsageError.one(
            f"No operation {operation_id!r}" if not matches else f"{operation_id!r} is ambiguous",
            f"{len(matches)} kept operations match."
            if matches
            else f"The log in {state_dir} keeps the last {log.limit} operations; none has this id.",
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
        ("", ""),
        ("header", "Transitions"),
    ]
    for t in op.transitions:
        lines.append(("", f"  {t.at}  {t.state.name:<12} {int(t.state):>3}  {t.message}".rstrip()))
    output.print_lines(lines)
    if op.errors:
        output.print_lines([("", ""), ("header", f"Errors ({op.error_count})")])
        for e in op.errors:
            output.print_lines(
                render_problem(Problem.from_dict(e)),
                output.stdout,
            )


_STYLE = {
    OperationState.SUCCESS: "green",
    OperationState.FAILURE: "red",
    OperationState.CANCELLED: "dim",
    OperationState.TIMEOUT: "red",
}


def _changes(op: Operation) -> str:
    s = op.plan_summary
    if not s:
        return ""
    return f"+{s.get('create', 0)} ~{s.get('update', 0)} ■{s.get('stop', 0)} -{s.get('delete', 0)}"
