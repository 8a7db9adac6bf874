"""`tasks set-status XID STATUS` and `tasks list`: the runtime status people own.

A task's status is not spec: reconcile never reverts it. Setting it is one
atomic store write (the serial moves, like any write) that records who and when.
"""

from __future__ import annotations

import click

from fleetward import timestamps
from fleetward.cli import output
from fleetward.cli.options import StateOptions, os_user, state_options, store_option
from fleetward.cli.state import read_store, state_dir_option
from fleetward.errors import UsageError
from fleetward.kinds.problems import did_you_mean
from fleetward.kinds.tasks import STATUSES, known_status, set_status
from fleetward.model import ObjectKey, ObjectState
from fleetward.store import StatusChange


@click.group("tasks")
def tasks_group() -> None:
    """Tasks declared by TaskBatch manifests, and their runtime status."""


@tasks_group.command("set-status")
@click.argument("xid")
@click.argument("status")
@state_options
@click.option("--by", "who", help="Who changes the status (default: the current user).")
@click.option("--json", "as_json", is_flag=True, help="Print the task's new status as JSON.")
@click.pass_context
def set_status_command(
    ctx: click.Context, xid: str, status: str, state: StateOptions, who: str | None, as_json: bool
) -> None:
    """Set the status of task XID to STATUS: open, in-progress, approved, completed,
    complete, done, resolved, closed, cancelled, canceled or rejected (any case).

    Records statusAudit (<status>On, minutes spent <status>For), modifiedBy and
    modifiedOn; completed/done set completedOn, resolved/closed set resolvedBy and
    resolvedOn, approved sets approvedBy and approvedOn. The next plan shows no change.
    """
    ctx.meta["json_output"] = as_json
    status = status.strip()
    if not status:
        raise UsageError.one(
            "Empty status",
            "STATUS must name the task's new status.",
            "Give a status, e.g. fleetward tasks set-status INSP-1 completed.",
        )
    known = known_status(status)
    if known is None:
        raise UsageError.one(
            f"Unknown task status {status!r}",
            f"A task's status is one of {', '.join(STATUSES)} (any case).",
            did_you_mean(status, STATUSES, "Give one of them, e.g. completed."),
            location=f"Task/{xid}",
        )
    status = known
    store = state.open_store()
    state_dir = store.location
    key = ObjectKey(f"Task/{xid}")
    at = timestamps.now()
    now = timestamps.to_iso(at, "milliseconds")
    if store.meta().lineage is None:
        # Nothing to change: say so, and create no state directory or lock file.
        raise UsageError.one(
            f"No store at {state_dir}",
            f"Nothing has been applied to the store at {state_dir}, so it holds no task; a task "
            "exists once a TaskBatch that declares it has been applied.",
            "Check --state-dir (or FLEETWARD_STATE_DIR), or apply the manifests first.",
        )
    with store.lock(state.lock_timeout):
        snapshot = store.read()
        task = snapshot.objects.get(key)
        if task is None:
            xids = [k.split("/", 1)[1] for k in snapshot.objects if k.startswith("Task/")]
            raise UsageError.one(
                f"No task with xid {xid!r} in the store",
                f"The store at {state_dir} holds {len(xids)} task(s); a task exists once a "
                "TaskBatch that declares it has been applied.",
                did_you_mean(xid, xids, "Check the xid (fleetward tasks list shows them)."),
                location=key,
            )
        if task.state is not ObjectState.ACTIVE:
            raise UsageError.one(
                f"Task {xid!r} is soft-deleted",
                "It was removed from the manifests (isDeleted: true), so its status is frozen.",
                "List the task in a TaskBatch again and apply, then set its status.",
                location=key,
            )
        new_status = set_status(
            task.status, status, who or os_user("fleetward"), now, at, task.created_at
        )
        meta = store.set_status(
            StatusChange(
                expected_lineage=snapshot.meta.lineage,
                expected_serial=snapshot.meta.serial,
                statuses={key: new_status},
                updated_at=now,
                history_entry={
                    "revision": snapshot.meta.last_applied_revision,
                    "operationId": f"set-status {xid}",
                    "time": now,
                    "counts": {"create": 0, "update": 0, "stop": 0, "delete": 0, "status": 1},
                },
            )
        )
    if as_json:
        output.print_json({"address": key, "serial": meta.serial, "status": new_status})
        return
    old = task.status.get("status", "open")
    output.stdout.print(f"{key}: status {old} → {status} (serial {meta.serial}).")


@tasks_group.command("list")
@state_dir_option
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the tasks (spec and status) as JSON.")
@click.pass_context
def list_command(ctx: click.Context, state_dir: str, store: str | None, as_json: bool) -> None:
    """List the tasks in the store with their runtime status."""
    ctx.meta["json_output"] = as_json
    tasks = sorted(
        (o for o in read_store(state_dir, store).read().objects.values() if o.kind == "Task"),
        key=lambda o: o.key,
    )
    if as_json:
        output.print_json([o.to_doc() for o in tasks])
        return
    # Fits 80 columns: the due time relative ("in 2d", "3h ago": overdue), who last set
    # the status in the wrapped last column; --json has the batch and every field.
    output.print_table(
        ("XID", "STATUS", "DUE", "ASSET", "TASK TYPE", "MODIFIED BY"),
        (
            (
                (
                    str(o.spec.get("xid", o.key)),
                    "deleted" if o.status.get("isDeleted") else str(o.status.get("status", "open")),
                    output.when(o.spec.get("dueDate")) if o.spec.get("dueDate") else "-",
                    _reference(o.spec.get("asset")),
                    _reference(o.spec.get("taskType")),
                    str(o.status.get("modifiedBy") or "-"),
                ),
                "" if o.state is ObjectState.ACTIVE else "dim",
            )
            for o in tasks
        ),
    )
    output.stdout.print(f"\n{len(tasks)} task(s).")


def _reference(ref: object) -> str:
    """A task's asset or task type as the manifest names it: its xid, else its id."""
    if not isinstance(ref, dict):
        return "-"
    return str(ref.get("xid") or ref.get("id") or "-")
