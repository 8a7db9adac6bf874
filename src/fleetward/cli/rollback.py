"""`fleetward rollback --to SERIAL|REVISION`: back to an earlier apply, pinned there.

The plan is made and shown like `apply`'s (and confirmed the same way), from
the desired state of the revision the chosen apply wrote, re-read from Git.
Once confirmed, under the store lock, the store is pinned to that revision
and the plan is written; a failed write restores the pin that was there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from fleetward.cli import output
from fleetward.cli.options import (
    StateOptions,
    guard_options,
    max_lines_option,
    os_user,
    source_options,
    state_options,
)
from fleetward.cli.reconcile import _apply, _recorded_operation
from fleetward.cli.state import read_store
from fleetward.errors import SourceError
from fleetward.model import Plan
from fleetward.pipeline import SourceOptions
from fleetward.planning import PlanOptions
from fleetward.rollback import TRIGGER, RollbackPoint, gone_from_git, rollback_point
from fleetward.store import Pin, Store
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
    store = read_store(state.state_dir)
    meta = store.meta()
    point = rollback_point(store.history(), to, meta.last_applied_revision)
    at = dataclasses.replace(sources, ref=point.revision)
    with _recorded_operation(store, TRIGGER) as record:
        record.argue(rollbackTo=point.revision, rollbackSerial=point.serial)
        pin = Pin(
            point.revision,
            point.serial,
            by or os_user("cli"),
            now_iso(),
            record.id,
            meta.last_applied_revision,
        )
        pinning = _Pinning(store, pin)
        try:
            plan, result = _apply(
                ctx,
                None,
                at,
                state,
                store,
                guards,
                max_lines,
                auto_approve,
                record,
                before_write=pinning,
                history_note={"rollbackTo": point.serial},
            )
        except SourceError as exc:
            raise gone_from_git(point, exc) from exc
        except BaseException:
            pinning.undo()
            raise
    _report(point, pin, plan, result.meta.serial, state.state_dir)


class _Pinning:
    """Pins the store when called (under the lock, just before the write); `undo` puts
    back the pin that was there when the write then fails."""

    def __init__(self, store: Store, pin: Pin) -> None:
        self.store = store
        self.pin = pin
        self.before: Pin | None = None
        self.done = False

    def __call__(self, plan: Plan) -> None:
        self.before = self.store.pin()
        self.store.set_pin(self.pin)
        self.done = True

    def undo(self) -> None:
        if self.done:
            self.store.set_pin(self.before)
            self.done = False


def _report(point: RollbackPoint, pin: Pin, plan: Plan, serial: Any, state_dir: str) -> None:
    lines = [
        ("", ""),
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
                f"Pinned: the daemon reconciles revision {point.short} (drift included) and does "
                "not move to new commits."
            ),
        ),
        ("", f"  Follow the tracked ref again with: fleetward resume --state-dir {state_dir}"),
    ]
    if not plan.changes:
        lines.insert(1, ("dim", "The store already held that revision's objects."))
    output.print_lines(lines)
