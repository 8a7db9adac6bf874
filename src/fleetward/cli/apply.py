"""`apply`: the engine's converge at the terminal — the plan shown, confirmed, written, told.

The converge (lock → resolve → plan → decide → apply → record) is the
engine's, the same one each daemon run is. What the terminal adds is its
`Governor`: the plan and the notes on what the daemon would hold are shown,
and a person confirms before anything is written. The engine records the
apply in the store's operation log.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from fleetward.cli import output
from fleetward.cli.options import (
    StateOptions,
    guard_options,
    isolate_option,
    max_lines_option,
    source_options,
    state_options,
)
from fleetward.cli.progress import TerminalProgress, phases
from fleetward.cli.reconcile import note_uncommitted, pin_note, target_option
from fleetward.cli.stores import leave_snapshot, open_command_store
from fleetward.engine import Declined, Engine, Governor, Verdict
from fleetward.errors import FleetwardError, ManifestError, Problem, UsageError, os_error
from fleetward.kinds.tasks import bulk_report, refused_report
from fleetward.model import Plan
from fleetward.operations import Operation
from fleetward.pipeline import SourceOptions, open_documents, with_state_caches
from fleetward.planning import PlanOptions
from fleetward.policy import Policy
from fleetward.progress import Watch
from fleetward.rendering import plan_from_dict, render_plan
from fleetward.runs import RunReport, RunSettings
from fleetward.store import Store
from fleetward.store.suspension import SuspendFile
from fleetward.targeting import parse_targets
from fleetward.timestamps import now_iso

# What to do when no terminal can confirm an apply.
_UNCONFIRMED = (
    "Review the plan above, then run again with --auto-approve, or save it with "
    "fleetward plan --out plan.json and apply that file."
)


@click.command("apply")
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@source_options
@state_options
@guard_options
@isolate_option
@max_lines_option
@target_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON: the TaskBatch report in the bulk-task API's response shape "
    "(success, message, output), the revision, serial and counts. Needs --auto-approve.",
)
@click.pass_context
def apply_command(
    ctx: click.Context,
    plan_file: str | None,
    sources: SourceOptions,
    state: StateOptions,
    guards: PlanOptions,
    isolate_failures: bool,
    max_lines: int,
    targets: tuple[str, ...],
    auto_approve: bool,
    as_json: bool,
) -> None:
    """Plan and apply the manifests to the store, or apply a saved PLAN_FILE exactly.

    Without PLAN_FILE: shows the plan and asks for confirmation on a terminal
    (only 'yes' is accepted), or applies at once with --auto-approve. With
    PLAN_FILE: applies that plan, refusing it if the store changed since
    (the source options are then not used). Every apply is one atomic write
    of the store.
    """
    ctx.meta["json_output"] = as_json
    if as_json and not auto_approve and plan_file is None:
        raise UsageError.one(
            "apply --json needs --auto-approve",
            "With --json, standard output carries JSON only, so fleetward cannot show the plan "
            "and ask for confirmation.",
            "Review the plan with fleetward plan, then run apply --json --auto-approve.",
        )
    if targets and plan_file is not None:
        raise UsageError.one(
            "--target cannot be combined with a saved PLAN_FILE",
            "A saved plan is applied exactly as it was made; a targeted one keeps its targets.",
            f"Drop --target, or make a targeted plan: fleetward plan --target {targets[0]} "
            "--out plan.json.",
        )
    parse_targets(targets)  # a malformed target fails before anything is read
    # The engine records the apply as an Operation in the store's log (its end only).
    cached = with_state_caches(sources, state.state_dir)
    engine = Engine(
        open_command_store(state.open_store(), cached),
        record_progress=False,
        documents=open_documents(cached),
    )
    settings = RunSettings(
        cached,
        Path(state.state_dir),
        guards,
        state.lock_timeout,
        isolate_failures=isolate_failures,
    )
    saved = functools.partial(_read_plan, Path(plan_file)) if plan_file is not None else None
    if saved is None:
        note_uncommitted(sources)
    op = Operation.new("cli", now_iso())
    if targets:  # the engine plans only what they select, and the operation says so
        op = dataclasses.replace(op, arguments={"targets": list(targets)})
    with phases(ctx) as bar:
        terminal = Terminal(
            ctx, state.state_dir, max_lines, auto_approve, saved is not None, bar, engine.store
        )
        report = engine.converge(op, settings, terminal, watch=bar, saved=saved)
    leave_snapshot(engine.store)
    raise_failure(ctx, report, as_json and saved is None)
    plan = report.plan
    assert plan is not None
    serial, wrote, counts = _outcome(report)
    if as_json:
        output.print_json(_result_json(plan, serial, wrote, counts))
        return
    if saved is not None:
        # What was written, as `plan` showed it (or "No changes."); shown once the
        # store accepted the plan, so a stale plan is not shown as if it applied.
        output.print_lines(render_plan(plan, max_lines))
    if wrote:
        _report(plan, serial, counts)


class Terminal(Governor):
    """The CLI's say over an apply: the person at the terminal sees the plan and confirms it.

    A hand-run apply writes the whole plan: SyncPolicies' windows and approvals, and
    the daemon's suspension, are the daemon's (the notes say what it would hold)."""

    def __init__(
        self,
        ctx: click.Context,
        state_dir: str,
        max_lines: int,
        auto_approve: bool,
        saved: bool,
        bar: Watch,
        store: Store | None = None,
        unconfirmed: str = _UNCONFIRMED,
    ) -> None:
        self.ctx = ctx
        self.unconfirmed = unconfirmed  # the resolution when no terminal can confirm
        self.store = store  # whose rollback pin the notes mention (None: none)
        self.state_dir = state_dir
        self.max_lines = max_lines
        self.auto_approve = auto_approve
        self.saved = saved  # a saved plan was reviewed already: it is shown once written
        self.bar = bar

    def planned(self, plan: Plan) -> None:
        if self.ctx.meta.get("json_output"):
            return
        if self.saved:  # reviewed when it was made: only what the store says now
            _pause(self.bar)
            output.print_lines(pin_note(plan, self.store), output.stderr)
            return
        _pause(self.bar)  # the plan and the prompt are printed with no bar drawn over them
        output.print_lines(render_plan(plan, self.max_lines))
        output.print_lines(_policy_notes(plan, self.state_dir, self.store), output.stderr)

    def decide(
        self,
        op: Operation,
        plan: Plan,
        policies: Mapping[str, Policy],
        blocked: frozenset[str],
    ) -> Verdict:
        verdict = super().decide(op, plan, policies, blocked)
        if not self.saved and plan.has_changes and not self.auto_approve:
            _confirm(self.unconfirmed)
        return verdict

    def unrecorded(self, op: Operation, error: FleetwardError) -> None:
        # The apply's own outcome matters more than its record.
        why = error.problems[0].error if error.problems else str(error)
        output.stderr.print(f"Warning: the operation was not recorded: {why}")


def _pause(bar: Watch) -> None:
    if isinstance(bar, TerminalProgress):
        bar.close()


def raise_failure(ctx: click.Context, report: RunReport, bulk: bool) -> None:
    """Re-raise what ended the apply, for the edge to render; `bulk`: with --json, say
    what became of the revision's TaskBatch items in the bulk-task API's shape."""
    failure = report.failure
    if failure is None:
        return
    if isinstance(failure, Declined):
        raise click.exceptions.Exit(failure.exit_code)
    plan = report.plan
    if bulk and isinstance(failure, FleetwardError):
        if plan is None and isinstance(failure, ManifestError):
            extra = schema_report(failure.problems)
            if extra is not None:
                ctx.meta["json_error_extra"] = extra
        elif plan is not None and "TaskBatch" in plan.reports:
            # Nothing was written: no item got created or updated, whatever the plan said.
            why = failure.problems[0].error if failure.problems else "the apply failed"
            ctx.meta["json_error_extra"] = refused_report(plan.reports["TaskBatch"], why)
    raise failure


def _outcome(report: RunReport) -> tuple[int, bool, dict[str, int]]:
    """(serial, wrote, counts) of a successful apply; a plan with nothing to write leaves
    the store at its serial."""
    if report.applied is not None:
        return report.applied.meta.serial, report.applied.wrote, report.applied.counts
    assert report.store is not None and report.plan is not None
    return report.store.meta.serial, False, report.plan.summary()


def _result_json(plan: Plan, serial: int, wrote: bool, counts: dict[str, int]) -> dict[str, Any]:
    """apply --json: the TaskBatch report (the bulk-task API's response shape) and the apply."""
    report = plan.reports.get("TaskBatch")
    head = (
        dict(report)
        if isinstance(report, dict)
        else {"success": True, "message": f"Applied {len(plan.changes)} change(s)"}
    )
    return {
        **head,
        "revision": plan.revision.id,
        "serial": serial,
        "wrote": wrote,
        "summary": counts,
        # As `plan --json` says it: which targets, and how many changes they left out.
        **({"targeted": list(plan.targeted), "leftOut": plan.left_out} if plan.targeted else {}),
    }


def _policy_notes(plan: Plan, state_dir: str, store: Store | None) -> list[tuple[str, str]]:
    """What the daemon would hold back that a hand-run apply writes anyway."""
    notes: list[tuple[str, str]] = []
    for name, info in plan.policies.items():
        window = info.get("window")
        if info.get("suspend"):
            why = "is suspended"
        elif isinstance(window, dict) and not window.get("open"):
            why = "has its window closed"
        elif info.get("approval") == "manual":
            why = "needs manual approval (confirming this apply approves it)"
        else:
            continue
        count = info.get("changes", 0)
        note = f"Note: SyncPolicy {name} {why}; fleetward apply writes its {count} change(s) now."
        notes.append(("dim", note + " The daemon would hold them."))
    try:
        suspension = (store if store is not None else SuspendFile(Path(state_dir))).suspension()
    except FleetwardError:
        suspension = None
    if suspension is not None and plan.changes:
        note = f"Note: the daemon is suspended (by {suspension.by} at {suspension.at});"
        notes.append(("dim", note + " fleetward apply writes anyway."))
    return notes + pin_note(plan, store)


def schema_report(problems: Sequence[Problem]) -> dict[str, Any] | None:
    """The bulk-task API's report of a revision whose tasks fail check 1 (schema).

    One unprocessed item per failing task, with its first schema error; no task is
    processed, since the plan-stage checks never ran. None when no task failed it.
    """
    failed: dict[tuple[str | None, Any], dict[str, Any]] = {}
    for problem in problems:
        params = problem.parameters
        if params.get("check") != "schema" or "task" not in params:
            continue
        where = (problem.location or "").rsplit(":", 2)[0] or None
        key = (where, params.get("xid") or params["task"])
        record = {"xid": params["xid"]} if "xid" in params else {"index": params["task"]}
        failed.setdefault(key, {"message": params["message"], "record": record})
    if not failed:
        return None
    return bulk_report([], list(failed.values()))


def _confirm(resolution: str = _UNCONFIRMED) -> None:
    """Ask whether to apply; anything but 'yes' (or Ctrl-C at the prompt) declines.
    Off a terminal, a UsageError whose resolution is `resolution`."""
    if not sys.stdin.isatty():
        raise UsageError.one(
            "Apply needs confirmation",
            "Standard input is not a terminal, so fleetward cannot ask whether to apply.",
            resolution,
        )
    output.print_lines(
        [
            ("", ""),
            ("header", "Do you want to perform these actions?"),
            ("", "  fleetward will apply the changes described above."),
            ("", "  Only 'yes' will be accepted to approve."),
            ("", ""),
        ]
    )
    try:
        answer = click.prompt("  Enter a value", default="", show_default=False)
    except click.Abort:  # Ctrl-C (or end of input) at the prompt: a "no", said as such
        output.stdout.print("\nApply cancelled. Nothing was changed.")
        raise Declined(130) from None
    if answer.strip() != "yes":
        output.stdout.print("\nApply cancelled. Nothing was changed.")
        raise Declined(1)


def _report(plan: Plan, serial: int, c: Mapping[str, int]) -> None:
    output.print_lines(
        [
            ("", ""),
            (
                "ok",
                f"Apply complete! Objects: {c['create']} created, {c['update']} updated, "
                f"{c['stop']} stopped, {c['delete']} deleted. "
                f"Revision {plan.revision.short}, serial {serial}.",
            ),
        ]
    )


def _read_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise UsageError.one(
            f"Plan file {path} does not exist",
            "apply was given a file argument, which must be a plan saved by fleetward plan --out.",
            "Check the path, or run fleetward apply without an argument to plan and apply.",
            location=str(path),
        ) from exc
    except OSError as exc:
        raise os_error(
            exc,
            UsageError,
            f"Cannot read the plan file {path}",
            "Check the path and its permissions, or save a plan with fleetward plan --out FILE.",
            path,
        ) from exc
    except ValueError as exc:
        raise UsageError.one(
            f"{path} is not a fleetward plan",
            f"It cannot be read as JSON ({exc}).",
            "Create the file with fleetward plan --out FILE.",
            location=str(path),
        ) from exc
    return plan_from_dict(data, str(path))
