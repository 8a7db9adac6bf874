"""`validate` and `plan`: the engine's read and plan steps at the terminal; they write no store.

`apply` (cli/apply.py) runs the whole converge."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

import click
from click.core import ParameterSource

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
from fleetward.cli.stores import open_command_store
from fleetward.engine import Engine
from fleetward.errors import FleetwardError, ManifestError, UsageError, os_error
from fleetward.model import Plan
from fleetward.pipeline import (
    SourceOptions,
    as_stored,
    open_documents,
    resolve,
    with_state_caches,
)
from fleetward.planning import PlanOptions
from fleetward.progress import SILENT, Watch
from fleetward.rendering import (
    Line,
    NamedRevision,
    plan_to_stream,
    render_markdown,
    render_markdown_problems,
    render_plan,
    write_json,
)
from fleetward.source import uncommitted_note
from fleetward.store import Store
from fleetward.targeting import Target, parse_targets

target_option = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ADDRESS|KIND/NAME-GLOB",
    help="Limit the plan to these objects (Asset/TRK-1, Asset/TRK-*; Fleet/eu-* is every "
    "object those documents declare) and the new objects they reference. Repeatable. The "
    "store then no longer equals the revision until a full apply.",
)


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
    note_uncommitted(sources)
    with tempfile.TemporaryDirectory(prefix="fleetward-validate-") as scratch, phases(ctx) as bar:
        # A remote is cloned into a scratch cache: validate touches no state directory.
        desired = resolve(dataclasses.replace(sources, cache_root=scratch), watch=bar)
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
@target_option
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
    help="Exit 0 with no changes, 2 with changes or documents held back, 1 on error.",
)
@click.pass_context
def plan_command(
    ctx: click.Context,
    sources: SourceOptions,
    state: StateOptions,
    guards: PlanOptions,
    isolate_failures: bool,
    max_lines: int,
    targets: tuple[str, ...],
    as_json: bool,
    fmt: str,
    out: str | None,
    base: str | None,
    detailed_exitcode: bool,
) -> None:
    """Show what applying the manifests would change. Writes nothing to the store.

    Exit codes: 0 success, 1 error or blocked plan, 2 changes present or documents held
    back by --isolate-failures (with --detailed-exitcode).
    """
    fmt = _output_format(ctx, as_json, fmt)
    ctx.meta["json_output"] = fmt == "json"
    if base is not None and out:
        raise UsageError.one(
            "--out cannot be combined with --base",
            "A plan made with --base compares two revisions, not the store, so it cannot be applied.",
            "Drop --out to review the change, or drop --base to save a plan against the store.",
        )
    _refuse_isolation_with_base(ctx, isolate_failures, base)
    sources = with_state_caches(sources, state.state_dir)
    parsed = parse_targets(targets)
    note_uncommitted(sources)
    inputs = _PlanInputs(
        NamedRevision(sources.ref), NamedRevision(base) if base is not None else None
    )
    try:
        with phases(ctx) as bar:
            plan, store = _read_and_plan(
                sources, state, guards, base, inputs, bar, parsed, isolate_failures
            )
    except FleetwardError as exc:
        inputs.failed_with(exc)
        _explain_failure(ctx, exc, fmt, inputs, max_lines)
        raise
    if out:
        _write_plan(plan, Path(out))
    if fmt != "json":  # JSON only on standard output, and no note beside it
        output.print_lines(pin_note(plan, store), output.stderr)
    if fmt == "json":
        output.print_json(plan_to_stream(plan))
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


def _refuse_isolation_with_base(ctx: click.Context, isolate: bool, base: str | None) -> None:
    """--isolate-failures holds documents at the store's last applied revision, and --base
    reads no store: given on the command line together, they conflict (from the
    environment, --base simply plans without isolation)."""
    given = ctx.get_parameter_source("isolate_failures")
    if isolate and base is not None and given is ParameterSource.COMMANDLINE:
        raise UsageError.one(
            "--isolate-failures cannot be combined with --base",
            "Isolation keeps invalid documents at the store's last applied revision, and a "
            "plan made with --base reads no store.",
            "Drop --isolate-failures to review the change, or drop --base to plan against "
            "the store.",
        )


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
    bar: Watch = SILENT,
    targets: tuple[Target, ...] = (),
    isolate_failures: bool = False,
) -> tuple[Plan, Store | None]:
    """The plan from the store (or, with --base, from revision `base`) to --ref, and the
    store it was planned against (None with --base); `inputs` follows which revision is
    being read."""
    if base is not None:
        desired = resolve(sources, watch=bar)
        inputs.head = NamedRevision(sources.ref, desired.revision)
        inputs.reading = "base"
        base_state = resolve(dataclasses.replace(sources, ref=base), watch=bar)
        inputs.reading = None
        plan = Engine.plan(desired, as_stored(base_state), guards, watch=bar, targets=targets)
        return dataclasses.replace(plan, base=base_state.revision.id), None
    # Opened first: a --state-dir that names no store fails before the source is read.
    engine = Engine(
        open_command_store(state.open_store(), sources), documents=open_documents(sources)
    )
    # Isolation applies where --isolate-failures or an isolateFailures SyncPolicy asks.
    isolation = engine.isolation(sources, isolate_failures, guards)
    resolved = engine.read(sources, bar, isolation=isolation)
    inputs.head = NamedRevision(sources.ref, resolved.revision)
    inputs.reading = None  # a store error is in no revision
    stored = engine.store.read()
    made = engine.plan(resolved, stored, guards, isolation.now, watch=bar, targets=targets)
    return made, engine.store


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


def pin_note(plan: Plan, store: Store | None) -> list[Line]:
    """The note `plan`, `apply` and `apply FILE` print alike when the store they opened is
    pinned by a rollback to another revision than `plan`'s: the daemon will take it back."""
    try:
        pin = store.pin() if store is not None else None
    except FleetwardError:
        return []  # a pin that cannot be read is the daemon's to report, not a plan's
    if pin is None or pin.revision == plan.revision.id:
        return []
    return [
        (
            "dim",
            (
                f"Note: the store is pinned to revision {pin.revision[:7]} by a rollback; the "
                "daemon will reconcile it back to that revision until fleetward resume."
            ),
        )
    ]


def note_uncommitted(sources: SourceOptions) -> None:
    """One line on stderr when uncommitted edits under --path are ignored (never in JSON)."""
    note = uncommitted_note(sources.source, sources.ref, sources.path, sources.no_git)
    if note is not None:
        output.print_lines([("dim", note)], output.stderr)


def _write_plan(plan: Plan, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            write_json(plan_to_stream(plan), fh.write)
        os.replace(tmp, path)
    except ValueError:  # a value JSON cannot hold (a bug): no half-written plan is left
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise os_error(
            exc,
            UsageError,
            f"Cannot write the plan to {path}",
            "Pass --out with a path in a writable directory.",
            path,
        ) from exc
