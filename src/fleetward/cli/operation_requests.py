"""`operations create|cancel|set-state|approve`: requests to the running daemon over its
HTTP API (the daemon checks them and answers with the operation)."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import click

from fleetward.cli import output
from fleetward.cli.client import DaemonApi, connection_options
from fleetward.cli.operation_log import window_lines
from fleetward.cli.options import Duration, os_user
from fleetward.cli.state import state_dir_option
from fleetward.errors import UsageError
from fleetward.operations import SETTABLE_STATES, Operation

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@click.command("create")
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
            *window_lines(op),
            ("", f"  Follow it: fleetward operations show {op.operation_id}"),
            ("", f"  Cancel it: fleetward operations cancel {op.operation_id}"),
        ]
    )


@click.command("cancel")
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


@click.command("set-state")
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


@click.command("approve")
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
    body = {"by": by or os_user("cli"), "comment": comment}
    op = _request(api, "POST", operation_id, "approve", body, as_json)
    if op is None:
        return
    output.print_lines(
        [
            (
                "ok",
                f"Operation {op.operation_id} approved by {body['by']}: {op.state.name} ({int(op.state)}).",
            ),
            *window_lines(op),
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
    body = {"state": state, "reason": reason or f"{state.lower()} by {os_user('cli')} from the CLI"}
    op = _request(api, "PUT", operation_id, "", body, as_json)
    if op is None:
        return
    output.print_lines(
        [("ok", f"Operation {op.operation_id} is now {op.state.name} ({int(op.state)}).")]
    )


def _request(
    api: DaemonApi,
    method: str,
    operation_id: str,
    action: str,
    body: dict[str, Any],
    as_json: bool,
) -> Operation | None:
    """Send `body` to the operation `operation_id` names (`/v0/operations/ID/` plus
    `action`) and return the operation the daemon answers with; None when the answer was
    printed as it came (`--json`)."""
    op_id = urllib.parse.quote(_resolve(api, operation_id), safe="")
    reply = api.call(method, f"/v0/operations/{op_id}/{action}", body)
    if as_json:
        output.print_json(reply)
        return None
    return Operation.from_dict(reply["content"])


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
