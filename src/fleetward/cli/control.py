"""`fleetward suspend` and `fleetward resume`: stop and restart applies, by a file.

They write or remove `<state-dir>/suspend.json` (no daemon needed, nothing over
HTTP); the daemon reads it at every run. `resume` also lifts the store's rollback
pin (`fleetward rollback`), and then says which revision the daemon applies next.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from fleetward.cli import output
from fleetward.cli.options import os_user, source_options
from fleetward.cli.state import missing_state_dir, state_dir_option
from fleetward.errors import FleetwardError
from fleetward.pipeline import SourceOptions, git_cache, open_source
from fleetward.rendering import Line
from fleetward.store import Pin, open_store
from fleetward.timestamps import now_iso
from fleetward.store.suspension import (
    SUSPEND_FILE,
    Suspension,
    clear_suspension,
    write_suspension,
)
from fleetward.timestamps import now_iso


@click.command("suspend")
@state_dir_option
@click.option("--reason", default="", help="Why (shown by fleetward status).")
@click.option("--by", metavar="NAME", help="Who suspends [default: your user name].")
def suspend_command(state_dir: str, reason: str, by: str | None) -> None:
    """Suspend applies: the daemon keeps planning and reporting, and writes nothing.

    Writes <state-dir>/suspend.json, which the daemon reads at every run; it
    holds until fleetward resume, across daemon restarts. A run already
    writing finishes. Suspending again replaces the reason.

    \b
    Examples:
      fleetward suspend --reason "incident 42: freeze the fleet"
      fleetward status            shows who suspended, when and why
      fleetward resume            applies again from the next run
    """
    suspension = Suspension(by=by or os_user("cli"), at=now_iso(), reason=reason)
    write_suspension(Path(state_dir), suspension)
    output.print_lines(
        [
            ("blocked", f"Applies suspended by {suspension.by} at {suspension.at}."),
            (
                "",
                (
                    "  The daemon still fetches, plans and reports at every run "
                    "(fleetward status, status/plan.txt), but writes nothing to the store."
                ),
            ),
            ("", f"  Written to {Path(state_dir) / SUSPEND_FILE}."),
            ("", f"  Resume with: fleetward resume --state-dir {state_dir}"),
        ]
    )


@click.command("resume")
@state_dir_option
@source_options
@click.option(
    "--lock-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the daemon's lock on the store, to lift a rollback pin.",
)
def resume_command(state_dir: str, sources: SourceOptions, lock_timeout: float) -> None:
    """Resume applies suspended with fleetward suspend, and lift a rollback pin.

    Removes <state-dir>/suspend.json, and the pin fleetward rollback set; the
    daemon's next run applies (within its poll interval, or at once on a push,
    webhook or fleetward operations create). After a rollback it says which
    revision that is: the head of --ref (give the daemon's --source, --ref and
    --path when they are not the defaults).

    \b
    Example:
      fleetward resume --state-dir /var/lib/fleetward
    """
    if not Path(state_dir).is_dir():  # a typo is an error, not "nothing to do"
        raise missing_state_dir(state_dir)
    existed = (Path(state_dir) / SUSPEND_FILE).exists()  # even a corrupt file is removed
    removed = clear_suspension(Path(state_dir))
    lifted = _lift_pin(state_dir, lock_timeout)
    if not existed and lifted is None:
        output.print_lines(
            [("ok", f"Applies were not suspended nor pinned in {state_dir}; nothing to do.")]
        )
        return
    lines: list[Line] = []
    if existed:
        since = f" (suspended by {removed.by} since {removed.at})" if removed else ""
        lines.append(("ok", f"Applies resumed{since}."))
    if lifted is not None:
        lines.append(
            (
                "ok",
                (
                    f"Rollback pin lifted (revision {lifted.revision[:7]}, pinned by {lifted.by} "
                    f"at {lifted.at})."
                ),
            )
        )
        lines.append(_next_revision(sources, state_dir))
    lines.append(
        (
            "",
            (
                "  The daemon's next run applies: within its poll interval, or at once "
                "with fleetward operations create."
            ),
        )
    )
    output.print_lines(lines)


def _lift_pin(state_dir: str, lock_timeout: float) -> Pin | None:
    """Remove the store's rollback pin (under its lock); the pin removed, or None.

    A corrupt pin is removed too: resuming must always work."""
    if not Path(state_dir).is_dir():
        return None
    store = open_store(state_dir)
    try:
        pin = store.pin()
    except FleetwardError:
        pin = Pin("(unreadable)", 0, "unknown", "unknown", "")
    if pin is None:
        return None
    with store.lock(lock_timeout):
        store.set_pin(None)
    return pin


def _next_revision(sources: SourceOptions, state_dir: str) -> Line:
    """What the daemon applies next: the head of the tracked ref, resolved now."""
    cached = dataclasses.replace(sources, cache_root=git_cache(state_dir))
    try:
        with open_source(cached) as snapshot:
            revision = snapshot.revision
    except FleetwardError as exc:
        why = exc.problems[0].error if exc.problems else str(exc)
        return (
            "blocked",
            f"  Next: the head of {sources.ref}, which cannot be read here ({why}).",
        )
    return ("", f"  Next: revision {revision.short} ({sources.ref} of {sources.source}).")
