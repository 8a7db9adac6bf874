"""The `fleetward` command: parses, calls the engine, renders. Errors end here, as text."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any

import click

from fleetward import __version__
from fleetward.cli import output
from fleetward.cli.apply import apply_command
from fleetward.cli.control import resume_command, suspend_command
from fleetward.cli.daemon import daemon_command
from fleetward.cli.notify import notify_group
from fleetward.cli.operations import operations_group
from fleetward.cli.reconcile import plan_command, validate_command
from fleetward.cli.rollback import rollback_command
from fleetward.cli.rules import rules_group
from fleetward.cli.schema import schema_command
from fleetward.cli.state import state_group
from fleetward.cli.status import status_command
from fleetward.cli.store import store_group
from fleetward.cli.tasks import tasks_group
from fleetward.cli.workflows import workflows_group
from fleetward.errors import FleetwardError, Problem

_MAX_SHOWN = 50  # problems printed on a terminal; --json carries every one


class _Group(click.Group):
    """Renders every FleetwardError as Error / Reason / Resolution and exits 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FleetwardError as exc:
            if ctx.meta.get("json_output"):
                # A command may add context to its failure (apply: the TaskBatch report).
                extra = ctx.meta.get("json_error_extra") or {}
                output.print_json({**extra, "errors": [p.to_dict() for p in exc.problems]})
            output.print_problems(exc.problems[:_MAX_SHOWN])
            hidden = len(exc.problems) - _MAX_SHOWN
            if hidden > 0:
                output.stderr.print(f"… and {hidden} more error(s); --json lists them all.")
            if len(exc.problems) > 1:
                output.stderr.print(
                    f"{len(exc.problems)} errors; nothing was changed.", style="bold red"
                )
            # Which input the errors are in, where a command reads more than one.
            note = ctx.meta.get("error_note")
            if note:
                output.stderr.print(note, style="bold red")
            ctx.exit(1)
        except KeyboardInterrupt:
            output.stderr.print(
                "Interrupted. An apply is one atomic write: the store holds the state from "
                "before it or after it, never a mix (fleetward state history tells which).",
                style="bold red",
            )
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so, without a wall of traceback
            if os.environ.get("FLEETWARD_DEBUG"):
                traceback.print_exc()
            problem = Problem(
                f"Internal error: {type(exc).__name__}: {exc}",
                "fleetward hit a bug. Store writes are atomic, so the store holds either "
                "the state before this command or the state it wrote "
                "(fleetward state history tells which).",
                "Run again with FLEETWARD_DEBUG=1 for the traceback and report it.",
            )
            if ctx.meta.get("json_output"):
                # A tool reading --json gets an error object even from a bug.
                extra = ctx.meta.get("json_error_extra") or {}
                output.print_json({**extra, "errors": [problem.to_dict()]})
            output.print_problems([problem])
            ctx.exit(1)


@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="fleetward")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--no-color",
    is_flag=True,
    help="No colours and no bold on a terminal (as NO_COLOR=1 does).",
)
def cli(verbose: int, no_color: bool) -> None:
    """fleetward keeps a state store equal to what a Git repository of YAML manifests declares.

    \b
    Typical use:
      fleetward validate                 check the manifests of HEAD
      fleetward plan                     show what would change
      fleetward apply                    plan, confirm, apply
      fleetward plan --out plan.json     save a plan for review ...
      fleetward apply plan.json          ... and apply exactly that plan
      fleetward state show               what the store holds
      fleetward workflows show NAME      a workflow's steps and edges
      fleetward rules preview NAME       what an asset rule matches and makes
      fleetward tasks set-status XID S   change a task's runtime status
      fleetward daemon                   reconcile on every commit, webhook and poll
      fleetward status                   what the daemon last did
      fleetward operations list          what the daemon (and apply) did, run by run
      fleetward operations create        ask the daemon to converge (now or in a window)
      fleetward suspend / resume         stop and restart the daemon's applies
      fleetward rollback --to SERIAL     back to an earlier apply, pinned until resume
      fleetward store copy --from --to   move the store, e.g. to --store postgresql://…
      fleetward schema                   JSON Schema of manifests, for editors
    """
    output.configure(plain=no_color)
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


cli.add_command(validate_command)
cli.add_command(plan_command)
cli.add_command(apply_command)
cli.add_command(daemon_command)
cli.add_command(operations_group)
cli.add_command(status_command)
cli.add_command(state_group)
cli.add_command(workflows_group)
cli.add_command(rules_group)
cli.add_command(tasks_group)
cli.add_command(suspend_command)
cli.add_command(resume_command)
cli.add_command(rollback_command)
cli.add_command(store_group)
cli.add_command(notify_group)
cli.add_command(schema_command)


def main() -> None:
    cli(prog_name="fleetward")
