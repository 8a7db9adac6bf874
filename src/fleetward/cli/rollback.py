"""`fleetward rollback --to SERIAL|REVISION`: back to an earlier apply, pinned there.

The rollback is the engine's converge, as `apply` runs it (the plan shown and
confirmed at the terminal), of an operation with trigger `rollback` whose
`rollbackTo` names the revision: the engine reads that revision from Git
again, pins the store to it just before the write, and puts the old pin back
if the write fails.
"""

from __future__ import annotations

from pathlib import Path

import click

from fleetward.cli import output
from fleetward.cli.apply import Terminal, raise_failure
from fleetward.cli.options import (
    StateOptions,
    guard_options,
    max_lines_option,
    os_user,
    source_options,
    state_options,
)
from fleetward.cli.progress import phases
from fleetward.cli.reconcile import note_uncommitted
from fleetward.cli.state import read_store
from fleetward.cli.stores import leave_snapshot, open_command_store
from fleetward.engine import Engine
from fleetward.errors import SourceError, UsageError
from fleetward.pipeline import SourceOptions, open_documents, with_state_caches
from fleetward.planning import PlanOptions
from fleetward.rendering import Line
from fleetward.rollback import RollbackPoint, gone_from_git, rollback_operation, rollback_point
from fleetward.runs import RunReport, RunSettings
from fleetward.source import unknown_revision
from fleetward.timestamps import now_iso


@click.command("rollback")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="SERIAL|REVISION",
    help="The apply to go back to: its serial in fleetward state history, or the commit "
    "SHA (or a prefix) it applied.",
)
@source_options
@state_options
@guard_options
@max_lines_option
@click.option("--auto-approve", is_flag=True, help="Roll back without asking for confirmation.")
@click.option("--by", metavar="NAME", help="Who rolls back [default: your user name].")
@click.pass_context
def rollback_command(
    ctx: click.Context,
    to: str,
    sources: SourceOptions,
    state: StateOptions,
    guards: PlanOptions,
    max_lines: int,
    auto_approve: bool,
    by: str | None,
) -> None:
    """Plan the store back to an earlier apply's revision, apply it, and pin the daemon there.

    The desired state of that revision is read from Git again (--source,
    --path); the plan is shown and confirmed as apply's is (--auto-approve, or
    'yes' on a terminal). Runtime task status is never rolled back. The
    daemon then keeps reconciling the pinned revision (drift included) and
    does not move to new commits until fleetward resume.

    \b
    Examples:
      fleetward state history           the applies (ROLLBACK marks those you can go back to)
      fleetward rollback --to 3         back to what serial 3 applied
      fleetward rollback --to 1a2b3c4   back to the last apply of that commit
      fleetward resume                  follow the tracked ref again
    """
    if ctx.get_parameter_source("ref") is click.core.ParameterSource.COMMANDLINE:
        raise UsageError.one(
            "rollback does not take --ref",
            "A rollback reads the revision --to names, never a ref: --ref would be ignored.",
            "Drop --ref; name the apply to go back to with --to SERIAL|REVISION.",
            location="--ref",
        )
    cached = with_state_caches(sources, state.state_dir)
    store = open_command_store(read_store(state.state_dir, state.store), cached)
    point = rollback_point(store.history(), to, store.meta().last_applied_revision)
    # The engine reads the revision the operation rolls back to (`pinned_sources`).
    note_uncommitted(cached.at(point.revision))
    engine = Engine(store, record_progress=False, documents=open_documents(cached))
    settings = RunSettings(cached, Path(state.state_dir), guards, state.lock_timeout)
    op = rollback_operation(point, by or os_user("cli"), now_iso())
    with phases(ctx) as bar:
        terminal = Terminal(
            ctx,
            state.state_dir,
            max_lines,
            auto_approve,
            False,
            bar,
            unconfirmed=(
                "Review the plan above, then run the rollback again with --auto-approve "
                "(a saved plan applied with fleetward apply would not pin the store)."
            ),
        )
        report = engine.converge(op, settings, terminal, watch=bar, where=state.state_dir)
    leave_snapshot(engine.store)
    if isinstance(report.failure, SourceError) and unknown_revision(report.failure):
        raise gone_from_git(point, report.failure) from report.failure
    raise_failure(ctx, report, bulk=False)
    output.print_lines(_told(point, report, state.state_dir))


def _told(point: RollbackPoint, report: RunReport, state_dir: str) -> list[Line]:
    serial = report.store.meta.serial if report.store is not None else None
    lines: list[Line] = [("", "")]
    if report.plan is not None and not report.plan.changes:
        lines.append(("dim", "The store already held that revision's objects."))
    lines += [
        (
            "ok",
            (
                f"Rolled back to revision {point.short} (the apply at serial {point.serial}); "
                f"the store is at serial {serial}."
            ),
        ),
        (
            "blocked",
            (
                f"Pinned: the daemon reconciles revision {point.short} (drift included) and "
                "does not move to new commits."
            ),
        ),
        ("", f"  Follow the tracked ref again with: fleetward resume --state-dir {state_dir}"),
    ]
    return lines
