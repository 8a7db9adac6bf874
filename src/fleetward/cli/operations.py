"""`operations list|show` read the runs recorded in the state directory;
`operations create|cancel|set-state|approve` ask the running daemon over its HTTP API."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import click

from fleetward.cli import output
from fleetward.cli.client import DaemonApi, connection_options
from fleetward.cli.options import Duration, max_lines_option, os_user, store_option
from fleetward.cli.state import state_dir_option
from fleetward.errors import FleetwardError, Problem, UsageError
from fleetward.operations import SETTABLE_STATES, Operation, OperationState
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


@click.group("operations")
def operations_group() -> None:
    """Operations: one per reconcile (daemon runs, applies and requested convergences).

    \b
    list and show read the log in the state directory; create, cancel,
    set-state and approve go through the running daemon's API and need its
    token (--api-token, --api-token-file or FLEETWARD_API_TOKEN).
    """


@operations_group.command("list")
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


@operations_group.command("show")
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
            else f"The log in {opened.location} keeps the last {log.limit} operations; none has this id.",
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
    lines.extend(_window_lines(op))
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


# -- changing operations through the daemon ---------------------------------------------------------

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@operations_group.command("create")
@state_dir_option
@connection_options
@click.option(
    "--window",
    nargs=2,
    metavar="START END",
    help="Converge only inside this window (ISO 8601 with a time zone) instead of now.",
)
@click.option(
    "--kind", "kinds", multiple=True, metavar="KIND", help="Only objects of this kind (repeatable)."
)
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="GLOB",
    help="Only objects whose id (after Kind/) matches the glob (repeatable).",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only objects with this label (repeatable; the query's matchLabels).",
)
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only assets with this attribute; VALUE is JSON when it parses (year=2022 is a "
    "number), else text (repeatable).",
)
@click.option(
    "--query",
    metavar="JSON",
    help="The operation_device_query as JSON; the flags above add to it.",
)
@click.option("--dry-run", is_flag=True, help="Plan and report; write nothing.")
@click.option(
    "--allow-mass-stop", is_flag=True, help="Let the plan stop or delete past the mass-stop guard."
)
@click.option(
    "--timeout",
    type=Duration(),
    metavar="DURATION",
    help="End the operation TIMEOUT if it has not applied by then (90s, 10m, 1h).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the operation as the API returns it.")
@click.pass_context
def create_operation(
    ctx: click.Context,
    state_dir: str,
    url: str | None,
    api_token: str | None,
    api_token_file: str | None,
    window: tuple[str, str] | None,
    kinds: tuple[str, ...],
    names: tuple[str, ...],
    labels: tuple[str, ...],
    attributes: tuple[str, ...],
    query: str | None,
    dry_run: bool,
    allow_mass_stop: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Ask the daemon to converge now, or inside a window; limited to a selection.

    The daemon records a CONVERGE operation (POST /v0/operations/) and prints
    it: CREATED and queued, or SCHEDULED until its window opens.

    \b
    Examples:
      fleetward operations create
      fleetward operations create --kind Fleet --name 'north-*' --dry-run
      fleetward operations create --label region=north --timeout 10m
      fleetward operations create --window 2030-01-01T22:00:00Z 2030-01-02T04:00:00Z
      fleetward operations create --query '{"kinds": ["Asset"]}' --json
    """
    ctx.meta["json_output"] = as_json
    body: dict[str, Any] = {"operation_type": "CONVERGE", "schedule_type": "IMMEDIATE"}
    if window:
        body["schedule_type"] = "WINDOW"
        body["schedule_args"] = {"start": window[0], "end": window[1]}
    selector = _query(query, kinds, names, labels, attributes)
    if selector:
        body["operation_device_query"] = selector
    arguments: dict[str, Any] = {}
    if dry_run:
        arguments["dryRun"] = True
    if allow_mass_stop:
        arguments["allowMassStop"] = True
    if timeout is not None:
        if timeout <= 0:
            raise click.BadParameter("must be more than 0", param_hint="--timeout")
        arguments["timeout"] = timeout
    if arguments:
        body["arguments"] = arguments
    api = DaemonApi.connect(state_dir, url, api_token, api_token_file)
    reply = api.call("POST", "/v0/operations/", body)
    if as_json:
        output.print_json(reply)
        return
    op = Operation.from_dict(reply["content"])
    waiting = f", waiting for {' and '.join(op.waiting_for)}" if op.waiting_for else ""
    output.print_lines(
        [
            (
                "ok",
                f"Operation {op.operation_id} created: {op.state.name} ({int(op.state)}){waiting}.",
            ),
            *_window_lines(op),
            ("", f"  Follow it: fleetward operations show {op.operation_id}"),
            ("", f"  Cancel it: fleetward operations cancel {op.operation_id}"),
        ]
    )


@operations_group.command("cancel")
@state_dir_option
@connection_options
@click.argument("operation_id")
@click.option("--reason", default="", help="Why (kept in the operation's transitions).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer.")
@click.pass_context
def cancel_operation(
    ctx: click.Context,
    state_dir: str,
    url: str | None,
    api_token: str | None,
    api_token_file: str | None,
    operation_id: str,
    reason: str,
    as_json: bool,
) -> None:
    """Cancel an operation that has not started writing (it ends CANCELLED).

    OPERATION_ID may be shortened to a unique prefix.

    \b
    Examples:
      fleetward operations cancel 5743470f --reason "wrong window"
    """
    _set_state(
        ctx, state_dir, url, api_token, api_token_file, operation_id, "CANCELLED", reason, as_json
    )


@operations_group.command("set-state")
@state_dir_option
@connection_options
@click.argument("operation_id")
@click.argument("state", type=click.Choice(SETTABLE_STATES, case_sensitive=False))
@click.option("--reason", default="", help="Why (kept in the operation's transitions).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer.")
@click.pass_context
def set_state(
    ctx: click.Context,
    state_dir: str,
    url: str | None,
    api_token: str | None,
    api_token_file: str | None,
    operation_id: str,
    state: str,
    reason: str,
    as_json: bool,
) -> None:
    """Set an operation's state (PUT /v0/operations/ID/): FAILED, CANCELLED, TIMEOUT or SCHEDULED.

    A final operation keeps its state; one already writing cannot be moved
    (the daemon answers why). OPERATION_ID may be shortened to a unique prefix.

    \b
    Examples:
      fleetward operations set-state 5743470f TIMEOUT --reason "window missed"
      fleetward operations set-state 5743470f SCHEDULED
    """
    _set_state(
        ctx, state_dir, url, api_token, api_token_file, operation_id, state.upper(), reason, as_json
    )


@operations_group.command("approve")
@state_dir_option
@connection_options
@click.argument("operation_id")
@click.option("--by", metavar="NAME", help="Who approves [default: your user name].")
@click.option("--comment", default="", help="Kept with the approval.")
@click.option("--json", "as_json", is_flag=True, help="Print the operation as the API returns it.")
@click.pass_context
def approve_operation(
    ctx: click.Context,
    state_dir: str,
    url: str | None,
    api_token: str | None,
    api_token_file: str | None,
    operation_id: str,
    by: str | None,
    comment: str,
    as_json: bool,
) -> None:
    """Approve a SCHEDULED operation that waits for manual approval.

    It applies at once, or when its window opens. The approval binds to the
    changes the operation holds: if the manifests changed since, the daemon
    plans again and asks again. OPERATION_ID may be shortened to a unique prefix.

    \b
    Examples:
      fleetward operations list --state SCHEDULED
      fleetward operations approve 5743470f --comment "checked the plan"
    """
    ctx.meta["json_output"] = as_json
    api = DaemonApi.connect(state_dir, url, api_token, api_token_file)
    op_id = _resolve(api, operation_id)
    body = {"by": by or os_user("cli"), "comment": comment}
    reply = api.call("POST", f"/v0/operations/{urllib.parse.quote(op_id, safe='')}/approve", body)
    if as_json:
        output.print_json(reply)
        return
    op = Operation.from_dict(reply["content"])
    output.print_lines(
        [
            (
                "ok",
                f"Operation {op.operation_id} approved by {body['by']}: {op.state.name} ({int(op.state)}).",
            ),
            *_window_lines(op),
        ]
    )


def _set_state(
    ctx: click.Context,
    state_dir: str,
    url: str | None,
    api_token: str | None,
    api_token_file: str | None,
    operation_id: str,
    state: str,
    reason: str,
    as_json: bool,
) -> None:
    ctx.meta["json_output"] = as_json
    api = DaemonApi.connect(state_dir, url, api_token, api_token_file)
    op_id = _resolve(api, operation_id)
    body = {"state": state, "reason": reason or f"{state.lower()} by {os_user('cli')} from the CLI"}
    reply = api.call("PUT", f"/v0/operations/{urllib.parse.quote(op_id, safe='')}/", body)
    if as_json:
        output.print_json(reply)
        return
    op = Operation.from_dict(reply["content"])
    output.print_lines(
        [("ok", f"Operation {op.operation_id} is now {op.state.name} ({int(op.state)}).")]
    )


def _resolve(api: DaemonApi, operation_id: str) -> str:
    """The full id of `operation_id` (a unique prefix is enough), asked of the daemon."""
    wanted = operation_id.strip().lower()
    if _UUID.match(wanted):
        return wanted
    reply = api.call("GET", "/v0/operations/?limit=1000&ordering=-created_at")
    ids = [str(op.get("operation_id")) for op in reply.get("content", {}).get("results", [])]
    matches = [i for i in ids if i.startswith(wanted)] if wanted else []
    if len(matches) != 1:
        raise UsageError.one(
            f"No operation {operation_id!r}" if not matches else f"{operation_id!r} is ambiguous",
            f"{len(matches)} of the daemon's {len(ids)} most recent operations match."
            if matches
            else f"None of the daemon's {len(ids)} most recent operations has this id.",
            "Pass a longer prefix or the full id; fleetward operations list shows them.",
            location=operation_id,
        )
    return matches[0]


def _query(
    raw: str | None,
    kinds: tuple[str, ...],
    names: tuple[str, ...],
    labels: tuple[str, ...],
    attributes: tuple[str, ...],
) -> dict[str, Any]:
    """The operation_device_query of --query and the selector flags (the daemon checks it)."""
    query: dict[str, Any] = {}
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--query") from None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--query")
        query = parsed
    for field, values in (("kinds", kinds), ("names", names)):
        if values:
            given = query.get(field)
            query[field] = [
                *(given if isinstance(given, list) else [given] if given else []),
                *values,
            ]
    for field, parsed in (
        ("matchLabels", _pairs(labels, "--label")),
        ("attributes", _attributes(attributes)),
    ):
        if parsed:
            given = query.get(field)
            query[field] = {**(given if isinstance(given, dict) else {}), **parsed}
    return query


def _pairs(pairs: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=flag)
        out[key.strip()] = value.strip()
    return out


def _attributes(pairs: tuple[str, ...]) -> dict[str, Any]:
    """--attribute KEY=VALUE: VALUE as JSON when it is (year=2022 is a number), else text."""
    out: dict[str, Any] = {}
    for key, text in _pairs(pairs, "--attribute").items():
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def _window_lines(op: Operation) -> list[tuple[str, str]]:
    if not op.window:
        return []
    opens, closes = op.window.get("opens_at") or "-", op.window.get("closes_at") or "-"
    return [("", f"  window     {opens} → {closes}")]
