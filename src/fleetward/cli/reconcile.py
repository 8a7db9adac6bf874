"""`validate`, `plan` and `apply`: the pipeline from manifests to the store, at the terminal."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import click
from click.core import ParameterSource
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetward.applying import ApplyResult, apply_plan, check_current, refuse_blocked
from fleetward.cli import output
from fleetward.cli.options import (
    StateOptions,
    guard_options,
    isolate_option,
    max_lines_option,
    scratch_source_options,
    source_options,
    state_options,
)
from fleetward.cli.progress import phases
from fleetward.errors import FleetwardError, ManifestError, Problem, UsageError, os_error
from fleetward.governance import owner_labels_of
from fleetward.isolation import Isolated
from fleetward.kinds.task_checks import bulk_report, refused_report
from fleetward.model import Plan, StoreSnapshot
from fleetward.operations import APPLY_STATES, Operation, OperationState
from fleetward.pipeline import (
    Isolation,
    SourceOptions,
    as_stored,
    git_cache,
    make_plan,
    resolve,
    resolve_isolated,
)
from fleetward.planning import PlanOptions
from fleetward.progress import SILENT
from fleetward.progress import Progress as EngineProgress
from fleetward.rendering import (
    NamedRevision,
    plan_from_dict,
    plan_to_dict,
    render_markdown,
    render_markdown_problems,
    render_plan,
)
from fleetward.source import uncommitted_note
from fleetward.store import Store, open_store
from fleetward.timestamps import now_iso

_PROGRESS_THRESHOLD = 2000  # changes; smaller applies finish before a bar would help


@click.command("validate")
@scratch_source_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def validate_command(ctx: click.Context, sources: SourceOptions, as_json: bool) -> None:
    """Check every manifest of a revision: YAML, fields, cross-document rules.

    Reads only the revision and writes nothing: no store is needed. Exit 0 if valid,
    1 if not.
    """
    ctx.meta["json_output"] = as_json
    _note_uncommitted(sources)
    with tempfile.TemporaryDirectory(prefix="fleetward-validate-") as scratch, phases(ctx) as bar:
        # A remote is cloned into a scratch cache: validate touches no state directory.
        desired = resolve(dataclasses.replace(sources, cache_root=scratch), progress=bar)
    files = len({path for path, _ in desired.documents})
    if as_json:
        output.print_json(
            {
                "valid": True,
                "revision": desired.revision.id,
                "files": files,
                "documents": len(desired.documents),
                "objects": len(desired.objects),
                "errors": [],
            }
        )
        return
    output.print_lines(
        [
            (
                "ok",
                f"Success! {len(desired.documents)} document(s) in {files} file(s) are valid "
                f"at revision {desired.revision.short} ({len(desired.objects)} object(s)).",
            )
        ]
    )


@click.command("plan")
@source_options
@state_options
@guard_options
@isolate_option
@max_lines_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (formatVersion 1).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format; markdown suits a pull-request comment.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Also save the plan as JSON, for `fleetward apply FILE`.",
)
@click.option(
    "--base",
    metavar="REF",
    help="Plan the change from revision REF to --ref instead of from the store "
    "(what a pull request would do); reads no store. The plan cannot be applied.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 with no changes, 2 with changes, 1 on error.",
)
@click.pass_context
def plan_command(
    ctx: click.Context,
    sources: SourceOptions,
    state: StateOptions,
    guards: PlanOptions,
    isolate_failures: bool,
    max_lines: int,
    as_json: bool,
    fmt: str,
    out: str | None,
    base: str | None,
    detailed_exitcode: bool,
) -> None:
    """Show what applying the manifests would change. Writes nothing to the store.

    Exit codes: 0 success, 1 error or blocked plan, 2 changes present (with --detailed-exitcode).
    """
    fmt = _output_format(ctx, as_json, fmt)
    ctx.meta["json_output"] = fmt == "json"
    if base is not None and out:
        raise UsageError.one(
            "--out cannot be combined with --base",
            "A plan made with --base compares two revisions, not the store, so it cannot be applied.",
            "Drop --out to review the change, or drop --base to save a plan against the store.",
        )
    sources = dataclasses.replace(sources, cache_root=git_cache(state.state_dir))
    _note_uncommitted(sources)
    inputs = _PlanInputs(
        NamedRevision(sources.ref), NamedRevision(base) if base is not None else None
    )
    try:
        with phases(ctx) as bar:
            plan = _read_and_plan(sources, state, guards, base, inputs, bar, isolate_failures)
    except FleetwardError as exc:
        inputs.failed_with(exc)
        _explain_failure(ctx, exc, fmt, inputs, max_lines)
        raise
    if out:
        _write_plan(plan, Path(out))
    if fmt == "json":
        output.print_json(plan_to_dict(plan))
    elif fmt == "markdown":
        sys.stdout.write(render_markdown(plan, max_lines, base_ref=base))
    else:
        output.print_lines(render_plan(plan, max_lines))
        if out:
            output.stdout.print(
                f"Saved the plan to {out}. Apply exactly it with: fleetward apply {out}"
            )
    if plan.blocked:
        ctx.exit(1)
    if detailed_exitcode and (plan.has_changes or plan.held):
        ctx.exit(2)


def _output_format(ctx: click.Context, as_json: bool, fmt: str) -> str:
    """--json is --format json; with another --format given, the two flags conflict."""
    if not as_json:
        return fmt
    given = ctx.get_parameter_source("fmt")
    if fmt != "json" and given in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
        raise UsageError.one(
            f"--json conflicts with --format {fmt}",
            "--json is short for --format json, and a command prints one format.",
            f"Drop --json to print {fmt}, or drop --format to print JSON.",
        )
    return "json"


@dataclasses.dataclass
class _PlanInputs:
    """The revisions `plan` reads (as named, and once read, what they are) and which
    one it is reading: with --base there are two, and a failure must say which."""

    head: NamedRevision
    base: NamedRevision | None
    reading: Literal["head", "base"] | None = "head"

    def failed_with(self, exc: FleetwardError) -> None:
        """Name the revision invalid manifests were found in (the error knows it)."""
        if not isinstance(exc, ManifestError) or exc.revision is None:
            return
        if self.reading == "head":
            self.head = NamedRevision(self.head.ref, exc.revision)
        elif self.reading == "base" and self.base is not None:
            self.base = NamedRevision(self.base.ref, exc.revision)


def _read_and_plan(
    sources: SourceOptions,
    state: StateOptions,
    guards: PlanOptions,
    base: str | None,
    inputs: _PlanInputs,
    bar: EngineProgress = SILENT,
    isolate_failures: bool = False,
) -> Plan:
    """The plan from the store (or, with --base, from revision `base`) to --ref; `inputs`
    follows which revision is being read."""
    # Opened first: a --state-dir that names no store fails before the source is read.
    store = open_store(state.state_dir) if base is None else None
    if store is None:
        desired = resolve(sources, progress=bar)
    else:
        isolation = Isolation(isolate_failures, store.read, guards, now_iso(), sources)
        resolved = resolve_isolated(sources, isolation, progress=bar)
        if isinstance(resolved, Isolated):
            inputs.head = NamedRevision(sources.ref, resolved.plan.revision)
            return resolved.plan
        desired = resolved
    inputs.head = NamedRevision(sources.ref, desired.revision)
    base_revision = None
    inputs.reading = "base" if base is not None else None  # a store error is in no revision
    if store is None:
        base_state = resolve(dataclasses.replace(sources, ref=base or "HEAD"), progress=bar)
        stored, base_revision = as_stored(base_state), base_state.revision.id
    else:
        stored = store.read()
    inputs.reading = None
    plan = make_plan(desired, stored, guards, progress=bar)
    return dataclasses.replace(plan, base=base_revision)


def _explain_failure(
    ctx: click.Context,
    exc: FleetwardError,
    fmt: str,
    inputs: _PlanInputs,
    max_lines: int,
) -> None:
    """Say which revision a failed `plan` could not read (with --base there are two),
    and, for --format markdown, print the errors as the comment a bot posts."""
    failed, base = inputs.reading, inputs.base
    if base is not None and failed is not None:
        side = base if failed == "base" else inputs.head
        shown = side.ref or "?"
        if side.revision is not None:
            shown += f" ({side.revision.short})"
        ctx.meta["error_note"] = (
            f"Reading the {failed} revision {shown} failed; nothing was planned."
        )
        ctx.meta["json_error_extra"] = {
            "failedRevision": {
                "side": failed,
                "ref": side.ref,
                "revision": side.revision.id if side.revision is not None else None,
            }
        }
    if fmt == "markdown":
        markdown = render_markdown_problems(exc.problems, inputs.head, base, failed, max_lines)
        sys.stdout.write(markdown)
        sys.stdout.flush()


@click.command("apply")
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@source_options
@state_options
@guard_options
@isolate_option
@max_lines_option
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
    store = open_store(state.state_dir)
    with _recorded_operation(store) as record:
        plan, result = _apply(
            ctx,
            plan_file,
            sources,
            state,
            store,
            guards,
            max_lines,
            auto_approve,
            record,
            as_json,
            isolate_failures,
        )
    if as_json:
        output.print_json(_result_json(plan, result))


def _note_uncommitted(sources: SourceOptions) -> None:
    """One line on stderr when uncommitted edits under --path are ignored (never in JSON)."""
    note = uncommitted_note(sources.source, sources.ref, sources.path, sources.no_git)
    if note is not None:
        output.print_lines([("dim", note)], output.stderr)


def _result_json(plan: Plan, result: ApplyResult) -> dict[str, Any]:
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
        "serial": result.meta.serial,
        "wrote": result.wrote,
        "summary": result.counts,
    }


def _apply(
    ctx: click.Context,
    plan_file: str | None,
    sources: SourceOptions,
    state: StateOptions,
    store: Store,
    guards: PlanOptions,
    max_lines: int,
    auto_approve: bool,
    record: _Recorder,
    as_json: bool = False,
    isolate_failures: bool = False,
) -> tuple[Plan, ApplyResult]:
    # A state directory that does not exist yet is made by the write, not before: a
    # refused or unconfirmed apply leaves none behind. Its plan is checked against the
    # empty store first, and again under the lock, which catches another process that
    # made the store meanwhile (the plan is then stale).
    fresh = not store.exists()
    if plan_file is not None:
        plan = _read_plan(Path(plan_file))
        record.resolved(plan)
        if fresh:
            check_current(plan, store.read().meta, state.state_dir)
        with store.lock(state.lock_timeout):
            result = apply_plan(
                plan, store, now_iso(), state.state_dir, _progress(plan), operation_id=record.id
            )
        record.done(plan, result)
        if not as_json:
            # What was written, as `plan` showed it (or "No changes."); shown once the
            # store accepted the plan, so a stale plan is not shown as if it applied.
            output.print_lines(render_plan(plan, max_lines))
            _report(plan, result)
        return plan, result
    _note_uncommitted(sources)
    try:
        with phases(ctx) as bar:
            cached = dataclasses.replace(sources, cache_root=git_cache(state.state_dir))
            isolation = Isolation(isolate_failures, store.read, guards, now_iso(), cached)
            resolved = resolve_isolated(cached, isolation, progress=bar)
    except ManifestError as exc:
        report = schema_report(exc.problems) if as_json else None
        if report is not None:
            ctx.meta["json_error_extra"] = report
        raise
    desired = resolved.desired if isinstance(resolved, Isolated) else resolved
    with contextlib.nullcontext() if fresh else store.lock(state.lock_timeout):
        snapshot = store.read()
        if isinstance(resolved, Isolated) and _unmoved(resolved.stored, snapshot):
            plan = resolved.plan  # isolation planned against this very store
        else:
            held = resolved.plan.held if isinstance(resolved, Isolated) else ()
            with phases(ctx) as bar:
                plan = make_plan(desired, snapshot, guards, progress=bar, held=held)
        if not as_json:
            output.print_lines(render_plan(plan, max_lines))
            output.print_lines(_policy_notes(plan, state.state_dir), output.stderr)
        elif "TaskBatch" in plan.reports:
            # A failure prints {"errors"} beside the per-item report of the bulk-task API.
            ctx.meta["json_error_extra"] = dict(plan.reports["TaskBatch"])
        record.resolved(plan)
        try:
            refuse_blocked(plan)
            if plan.has_changes and not auto_approve:
                _confirm()
            with store.lock(state.lock_timeout) if fresh else contextlib.nullcontext():
                result = apply_plan(
                    plan,
                    store,
                    now_iso(),
                    state.state_dir,
                    _progress(plan),
                    None if fresh else snapshot,
                    operation_id=record.id,
                    owner_labels=owner_labels_of(desired.documents),
                )
        except FleetwardError as exc:
            if as_json and "TaskBatch" in plan.reports:
                # Nothing was written: no item got created or updated, whatever the plan said.
                why = exc.problems[0].error if exc.problems else "the apply failed"
                ctx.meta["json_error_extra"] = refused_report(plan.reports["TaskBatch"], why)
            raise
        record.done(plan, result)
    if not as_json:
        _report(plan, result)
    return plan, result


def _unmoved(before: StoreSnapshot, now: StoreSnapshot) -> bool:
    """Whether the store is still the one a plan was made against."""
    return before.meta.lineage == now.meta.lineage and before.meta.serial == now.meta.serial


def _policy_notes(plan: Plan, state_dir: str) -> list[tuple[str, str]]:
    """What the daemon would hold back that a hand-run apply writes anyway."""
    from fleetward.store.suspension import read_suspension

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
        suspension = read_suspension(Path(state_dir))
    except FleetwardError:
        suspension = None
    if suspension is not None and plan.changes:
        note = f"Note: the daemon is suspended (by {suspension.by} at {suspension.at});"
        notes.append(("dim", note + " fleetward apply writes anyway."))
    return notes


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


class _Recorder:
    """The Operation of one `apply`, recorded in the operation log when the command ends."""

    def __init__(self) -> None:
        self.op = Operation.new("cli", now_iso()).move(OperationState.RESOLVING, now_iso())

    @property
    def id(self) -> str:
        return self.op.operation_id

    def resolved(self, plan: Plan) -> None:
        self.op = dataclasses.replace(
            self.op.move(OperationState.RESOLVED, now_iso(), "plan ready"),
            revision=plan.revision.id,
            ref=plan.revision.ref,
            plan_summary=plan.summary(),
            serial=plan.serial,
        )

    def done(self, plan: Plan, result: ApplyResult) -> None:
        now = now_iso()
        if result.wrote:
            self.op = self.op.through(APPLY_STATES, now).move(OperationState.COMPLETED, now)
            message = f"applied {plan.revision.short} at serial {result.meta.serial}"
        else:
            message = f"no changes; the store matches {plan.revision.short}"
        if plan.held:
            message += "; held back: " + ", ".join(h.address for h in plan.held)
        self.op = dataclasses.replace(
            self.op.move(OperationState.SUCCESS, now, message), serial=result.meta.serial
        )


@contextlib.contextmanager
def _recorded_operation(store: Store) -> Iterator[_Recorder]:
    """Record the apply as an Operation in the store's log, however it ends.

    Failures are recorded only in an existing state directory: a mistyped
    --state-dir must not leave a new directory behind.
    """
    existed = store.exists()
    record = _Recorder()
    try:
        yield record
    except FleetwardError as exc:
        record.op = record.op.with_errors(exc.problems).move(
            OperationState.FAILURE, now_iso(), exc.problems[0].error if exc.problems else ""
        )
        if existed:
            _save(store, record.op)
        raise
    except (click.exceptions.Exit, KeyboardInterrupt):
        record.op = record.op.move(OperationState.CANCELLED, now_iso(), "not confirmed")
        if existed:
            _save(store, record.op)
        raise
    _save(store, record.op)


def _save(store: Store, op: Operation) -> None:
    try:
        store.operations.record(op)
    except FleetwardError as exc:  # the apply's own outcome matters more than its record
        output.stderr.print(f"Warning: the operation was not recorded: {exc.problems[0].error}")


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise UsageError.one(
            "Apply needs confirmation",
            "Standard input is not a terminal, so fleetward cannot ask whether to apply.",
            "Review the plan above, then run again with --auto-approve, or save it with "
            "fleetward plan --out plan.json and apply that file.",
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
        raise click.exceptions.Exit(130) from None
    if answer.strip() != "yes":
        output.stdout.print("\nApply cancelled. Nothing was changed.")
        raise click.exceptions.Exit(1)


def _progress(plan: Plan) -> ApplyProgress | None:
    if len(plan.changes) < _PROGRESS_THRESHOLD or not output.stderr.is_terminal:
        return None
    return ApplyProgress(len(plan.changes))


class ApplyProgress:
    """A rich progress bar on stderr, driven by apply_plan's progress callback."""

    def __init__(self, total: int) -> None:
        self._bar = Progress(
            TextColumn("Applying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=output.stderr,
            transient=True,
        )
        self._task = self._bar.add_task("apply", total=total)
        self._bar.start()

    def __call__(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done)
        if done >= total:
            self._bar.stop()


def _report(plan: Plan, result: ApplyResult) -> None:
    c = result.counts
    if not result.wrote:
        return
    output.print_lines(
        [
            ("", ""),
            (
                "ok",
                f"Apply complete! Objects: {c['create']} created, {c['update']} updated, "
                f"{c['stop']} stopped, {c['delete']} deleted. "
                f"Revision {plan.revision.short}, serial {result.meta.serial}.",
            ),
        ]
    )


def _write_plan(plan: Plan, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(plan_to_dict(plan), indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise os_error(
            exc,
            UsageError,
            f"Cannot write the plan to {path}",
            "Pass --out with a path in a writable directory.",
            path,
        ) from exc


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
