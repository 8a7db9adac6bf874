"""`fleetward suspend` and `fleetward resume`: stop and restart applies, by a file.

They write or remove `<state-dir>/suspend.json` (no daemon needed, nothing over
HTTP); the daemon reads it at every run.
"""

from __future__ import annotations

from pathlib import Path

import click

from fleetward.cli import output
from fleetward.cli.options import os_user
from fleetward.cli.state import state_dir_option
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
def resume_command(state_dir: str) -> None:
    """Resume applies suspended with fleetward suspend.

    Removes <state-dir>/suspend.json; the daemon's next run applies (within its
    poll interval, or at once on a push, webhook or fleetward operations create).

    \b
    Example:
      fleetward resume --state-dir /var/lib/fleetward
    """
    existed = (Path(state_dir) / SUSPEND_FILE).exists()  # even a corrupt file is removed
    removed = clear_suspension(Path(state_dir))
    if not existed:
        output.print_lines([("ok", f"Applies were not suspended in {state_dir}; nothing to do.")])
        return
    since = f" (suspended by {removed.by} since {removed.at})" if removed else ""
    output.print_lines(
        [
            ("ok", f"Applies resumed{since}."),
            (
                "",
                (
                    "  The daemon's next run applies: within its poll interval, or at once "
                    "with fleetward operations create."
                ),
            ),
        ]
    )
