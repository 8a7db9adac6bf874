"""`operations list|show` read the runs recorded in the state directory;
`operations create|cancel|set-state|approve` ask the running daemon over its HTTP API."""

from __future__ import annotations

import click

from fleetward.cli.operation_log import list_operations, show_operation
from fleetward.cli.operation_requests import (
    approve_operation,
    cancel_operation,
    create_operation,
    set_state,
)


@click.group("operations")
def operations_group() -> None:
    """Operations: one per reconcile (daemon runs, applies and requested convergences).

    \b
    list and show read the log in the state directory; create, cancel,
    set-state and approve go through the running daemon's API and need its
    token (--api-token, --api-token-file or FLEETWARD_API_TOKEN).
    """


for _command in (
    list_operations,
    show_operation,
    create_operation,
    cancel_operation,
    set_state,
    approve_operation,
):
    operations_group.add_command(_command)
