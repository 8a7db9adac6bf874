"""`fleetward status`: what the daemon last did, read from `status/summary.json`."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import click

from fleetward.cli import output
from fleetward.cli.options import store_option
from fleetward.cli.state import state_dir_option
from fleetward.errors import Problem, StoreError, UsageError, os_error
from fleetward.rendering import Line, render_problem
from fleetward.store import Store, open_configured
from fleetward.store.files import process_alive
from fleetward.store.suspension import StoreOrFile, Suspensions
from fleetward.timestamps import now, parse_iso

_REWRITTEN = "Check the file's permissions; the daemon rewrites it after its next run."


@click.command("status")
@state_dir_option
@store_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print summary.json as it is, with the suspension (fleetward suspend) added.",
)
@click.pass_context
def status_command(ctx: click.Context, state_dir: str, store: str | None, as_json: bool) -> None:
    """Show the daemon's last run: revisions, readiness, counts and errors.

    Reads <state-dir>/status/summary.json, which the daemon rewrites after every
    run and when it stops; works while the daemon runs and after it stopped.
    The suspension and the rollback pin are read from the store now (--store:
    the daemon's database). Exit 0 when the daemon is running (or was a --once
    run), its last run succeeded and it was ready; 1 otherwise. A standby
    replica's last run is the one it made while it led (if it ever did).
    """
    ctx.meta["json_output"] = as_json
    path = Path(state_dir) / "status" / "summary.json"
    try:
        summary = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError.one(
            f"No daemon status in {state_dir}",
            f"{path} does not exist: no daemon has run on this state directory.",
            "Start one with fleetward daemon (or fleetward daemon --once), or pass the "
            "--state-dir it uses.",
            location=str(path),
        ) from None
    except OSError as exc:
        raise os_error(exc, UsageError, f"Cannot read {path}", _REWRITTEN, path) from exc
    except ValueError as exc:
        raise UsageError.one(
            f"Cannot read {path}", f"{exc}.", _REWRITTEN, location=str(path)
        ) from exc
    stopped = _not_running(summary)
    stale = None if stopped else _staleness(summary)
    if stopped:
        summary["ready"] = False
        summary.setdefault("readiness", {})["reasons"] = [stopped]  # the one that matters
    elif stale:
        summary["ready"] = False
        summary.setdefault("readiness", {}).setdefault("reasons", []).append(stale)
    summary["running"] = None if _get(summary, "daemon", "once") else stopped is None
    # A standby makes no runs: it is well while it runs and reaches the store.
    standby = _get(summary, "replica", "role") == "standby"
    healthy = (
        not stopped
        and bool(summary.get("ready"))
        and (standby or _get(summary, "lastOperation", "state") == "SUCCESS")
    )
    kept = open_configured(store, state_dir)
    suspended = _suspension(kept if store is None else StoreOrFile(kept, Path(state_dir)))
    pinned = _pin(kept)
    if as_json:
        output.print_json({**summary, "suspension": suspended, "pinned": pinned})
    else:
        output.print_lines(_suspension_lines(suspended) + _pin_lines(pinned) + _lines(summary))
    ctx.exit(0 if healthy else 1)


def _suspension(kept: Suspensions) -> dict[str, Any] | None:
    """The store's suspension as JSON (`fleetward suspend`), or None when applies run."""
    try:
        found = kept.suspension()
    except StoreError as exc:
        return {"error": exc.problems[0].to_dict()}
    return found.to_dict() if found is not None else None


def _pin(kept: Store) -> dict[str, Any] | None:
    """The store's rollback pin (`fleetward rollback`) as JSON, read now, or None."""
    try:
        found = kept.pin()
    except StoreError as exc:
        return {"error": exc.problems[0].to_dict()}
    return found.to_dict() if found is not None else None


def _pin_lines(pinned: dict[str, Any] | None) -> list[Line]:
    if pinned is None:
        return []
    if "error" in pinned:
        return [
            ("blocked", "Rollback pin unknown: it cannot be read"),
            *render_problem(Problem.from_dict(pinned["error"])),
        ]
    return [
        (
            "blocked",
            (
                f"Pinned to revision {str(pinned['revision'])[:12]} (serial {pinned['serial']}) by "
                f"{pinned['by']} since {pinned['at']}"
            ),
        ),
        ("", "  The daemon reconciles that revision, not new commits; fleetward resume lifts it."),
    ]


def _suspension_lines(suspended: dict[str, Any] | None) -> list[Line]:
    if suspended is None:
        return []
    if "error" in suspended:
        return [
            ("blocked", "Suspension unknown: it cannot be read"),
            *render_problem(Problem.from_dict(suspended["error"])),
        ]
    reason = f": {suspended['reason']}" if suspended.get("reason") else ""
    return [
        ("blocked", f"Suspended by {suspended['by']} since {suspended['at']}{reason}"),
        ("", "  Runs plan and report but apply nothing; fleetward resume applies again."),
    ]


def _not_running(summary: dict[str, Any]) -> str | None:
    """Why the daemon that wrote the summary is known not to run any more, or None.

    It recorded a clean stop; or it runs on this host and its PID is gone (a kill
    or a crash records nothing). A --once run is meant to have exited."""
    daemon = summary.get("daemon")
    if not isinstance(daemon, dict) or daemon.get("once"):
        return None
    pid = daemon.get("pid")
    if daemon.get("stoppedAt"):
        return (
            f"the daemon (PID {pid}) stopped at {daemon['stoppedAt']} "
            f"({daemon.get('stopSignal') or 'stopped'})"
        )
    here = daemon.get("host") == socket.gethostname()
    if isinstance(pid, int) and here and not process_alive(pid):
        return (
            f"the daemon (PID {pid}) is not running, and did not record a stop "
            "(killed, or crashed?)"
        )
    return None


def _staleness(summary: dict[str, Any]) -> str | None:
    """Why the file is too old to trust (the daemon wrote no run for too long), or None."""
    bound = _get(summary, "readiness", "checks", "maxAgeSeconds")
    try:
        age = (now() - parse_iso(str(summary.get("updatedAt")))).total_seconds()
    except ValueError:
        return None
    if isinstance(bound, int | float) and age > bound:
        return (
            f"summary.json was last written {age:.0f}s ago (more than {bound:g}s): "
            f"is the daemon (PID {_get(summary, 'daemon', 'pid')}) still running?"
        )
    return None


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _role_lines(replica: Any) -> list[Line]:
    """The daemon's role among the replicas of its store, when it has one."""
    if not isinstance(replica, dict):
        return []
    since = f" since {replica.get('since')}"
    if replica.get("role") == "leader":
        return [("", f"  role       leader{since}: this replica fetches, plans and applies")]
    lines: list[Line] = [
        (
            "",
            (
                f"  role       standby{since}: another replica leads; this one serves reads "
                "and requests, and takes the lead if the leader stops"
            ),
        )
    ]
    if replica.get("problem"):
        lines.append(("blocked", f"  store      {replica['problem']}"))
    return lines


def _lines(s: dict[str, Any]) -> list[Line]:
    op = s.get("lastOperation") or {}
    source = s.get("source") or {}
    applied = s.get("applied") or {}
    daemon = s.get("daemon") or {}
    ready = bool(s.get("ready"))
    state = "Ready" if ready else "Not running" if s.get("running") is False else "Not ready"
    lines: list[Line] = [
        (
            "ok" if ready else "blocked",
            state + ("" if ready else ": " + "; ".join(_get(s, "readiness", "reasons") or [])),
        ),
        *_role_lines(s.get("replica")),
        ("", f"  source     {source.get('url')} {source.get('ref')}:{source.get('path')}"),
        (
            "",
            f"  seen       {(source.get('revisionSeen') or '-')[:12]}"
            + ("" if source.get("fetchOk", True) else "  (last fetch failed)"),
        ),
        (
            "",
            f"  applied    {(applied.get('revision') or '-')[:12]}  serial {applied.get('serial')}"
            + ("  (in sync)" if s.get("inSync") else ""),
        ),
        (
            "",
            (
                f"  last run   {op.get('state')} ({op.get('stateCode')}) {op.get('trigger')} at "
                f"{op.get('finishedAt') or op.get('startedAt')}, {op.get('durationSeconds')}s — "
                f"{op.get('message')}"
            )
            if op
            else "  last run   none by this daemon (a standby: the leader runs them)",
        ),
        ("", f"  operation  {op.get('id')}"),
        ("", f"  success    {s.get('lastSuccessAt') or 'never'}"),
        (
            "",
            f"  daemon     pid {daemon.get('pid')}, {daemon.get('listen') or 'no HTTP'}, "
            f"updated {s.get('updatedAt')}",
        ),
    ]
    objects = s.get("objects") or {}
    if objects:
        counts = ", ".join(
            f"{kind} " + " ".join(f"{n} {state}" for state, n in sorted(states.items()))
            for kind, states in sorted(objects.items())
        )
        lines.append(("", f"  objects    {counts}"))
    if s.get("drift"):
        lines.append(("update", f"  drift      {s['drift']} object(s)"))
    for failed in s.get("statusFileErrors") or []:
        lines.append(("error", f"  not written {failed}"))
    errors = s.get("errors") or []
    if errors:
        lines.append(("", ""))
        lines.append(("error", f"{s.get('errorCount', len(errors))} error(s) in the last run:"))
        for e in errors[:20]:
            lines.extend(render_problem(Problem.from_dict(e)))
    return lines
