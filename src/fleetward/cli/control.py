"""`fleetward suspend` and `fleetward resume`: stop and restart applies, by the store.

They set or lift the store's suspension (no daemon needed, nothing over HTTP):
`<state-dir>/suspend.json`, or with `--store URL` a row every replica of the
database reads; the daemon reads it at every run. `resume` also lifts the
store's rollback pin (`fleetward rollback`), and then says which revision the
daemon applies next.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from fleetward.cli import output
from fleetward.cli.options import os_user, source_options, store_option
from fleetward.cli.state import missing_state_dir, state_dir_option
from fleetward.errors import FleetwardError, StoreError
from fleetward.pipeline import SourceOptions, git_cache, open_source
from fleetward.rendering import Line
from fleetward.store import Pin, Store, open_configured
from fleetward.store.suspension import SUSPEND_FILE, Suspension, clear_suspension
from fleetward.timestamps import now_iso


@click.command("suspend")
@state_dir_option
@store_option
@click.option("--reason", default="", help="Why (shown by fleetward status).")
@click.option("--by", metavar="NAME", help="Who suspends [default: your user name].")
def suspend_command(state_dir: str, store: str | None, reason: str, by: str | None) -> None:
    """Suspend applies: the daemon keeps planning and reporting, and writes nothing.

    Writes <state-dir>/suspend.json, or with --store a PostgreSQL database the
    suspension every replica of it reads; the daemon reads it at every run. It
    holds until fleetward resume, across daemon restarts. A run already
    writing finishes. Suspending again replaces the reason.

    \b
    Examples:
      fleetward suspend --reason "incident 42: freeze the fleet"
      fleetward status            shows who suspended, when and why
      fleetward resume            applies again from the next run
    """
    kept = open_configured(store, state_dir)
    suspension = Suspension(by=by or os_user("cli"), at=now_iso(), reason=reason)
    kept.set_suspension(suspension)
    where = (
        f"Written to {Path(state_dir) / SUSPEND_FILE}."
        if store is None
        else f"Kept in {kept.location}: every daemon of this store holds."
    )
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
            ("", f"  {where}"),
            ("", f"  Resume with: fleetward resume {_where_flags(state_dir, store, kept)}"),
        ]
    )


@click.command("resume")
@state_dir_option
@store_option
@source_options
@click.option(
    "--lock-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the daemon's lock on the store, to lift a rollback pin.",
)
def resume_command(
    state_dir: str, store: str | None, sources: SourceOptions, lock_timeout: float
) -> None:
    """Resume applies suspended with fleetward suspend, and lift a rollback pin.

    Removes the suspension (<state-dir>/suspend.json, or with --store the
    database's, and a suspend.json left in --state-dir), and the pin fleetward
    rollback set; the daemon's next run applies (within its poll interval, or at
    once on a push, webhook or fleetward operations create). After a rollback it
    says which revision that is: the head of --ref (give the daemon's --source,
    --ref and --path when they are not the defaults).

    \b
    Example:
      fleetward resume --state-dir /var/lib/fleetward
    """
    if store is None and not Path(state_dir).is_dir():  # a typo, not "nothing to do"
        raise missing_state_dir(state_dir)
    kept = open_configured(store, state_dir)
    existed, removed = _lift_suspension(kept)
    if store is not None and (Path(state_dir) / SUSPEND_FILE).exists():
        # A suspension given with --state-dir only holds the daemon too: it goes as well.
        from_file = clear_suspension(Path(state_dir))
        existed, removed = True, removed or from_file
    lifted = _lift_pin(kept, lock_timeout)
    if not existed and lifted is None:
        output.print_lines(
            [("ok", f"Applies were not suspended nor pinned in {kept.location}; nothing to do.")]
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


def _where_flags(state_dir: str, store: str | None, kept: Store) -> str:
    return f"--state-dir {state_dir}" + (f" --store {kept.location}" if store else "")


def _lift_suspension(kept: Store) -> tuple[bool, Suspension | None]:
    """Remove the store's suspension: whether there was one, and it (None if unreadable).

    One that cannot be read is removed too: resuming must always work."""
    try:
        removed = kept.suspension()
    except StoreError:
        removed, unreadable = None, True
    else:
        unreadable = False
    if removed is None and not unreadable:
        return False, None
    kept.set_suspension(None)
    return True, removed


def _lift_pin(kept: Store, lock_timeout: float) -> Pin | None:
    """Remove the store's rollback pin (under its lock); the pin removed, or None.

    A corrupt pin is removed too: resuming must always work."""
    if not kept.exists():
        return None
    try:
        pin = kept.pin()
    except FleetwardError:
        pin = Pin("(unreadable)", 0, "unknown", "unknown", "")
    if pin is None:
        return None
    with kept.lock(lock_timeout):
        kept.set_pin(None)
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
