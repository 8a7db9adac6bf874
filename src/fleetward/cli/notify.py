"""`fleetward notify test TARGET`: send one test event to a configured target, now.

It reads the daemon's config file (`--config`, or FLEETWARD_CONFIG) and the
target's secret as the daemon does, sends one request without the outbox or
retries, and prints the receiver's answer: the quickest check that a URL, a
token and a signature are right before the first real event.
"""

from __future__ import annotations

import click
import httpx

from fleetward.cli import output
from fleetward.daemon.config import read_config_file
from fleetward.errors import UsageError
from fleetward.model import Revision
from fleetward.notify import EventLog, prepare, request_for, send

_ANSWER_SHOWN = 2000  # characters of the receiver's answer printed


@click.group("notify")
def notify_group() -> None:
    """Notification targets of the daemon's config file (`notifications:`)."""


@notify_group.command("test")
@click.argument("target_name", metavar="TARGET")
@click.option(
    "--config",
    "config_file",
    envvar="FLEETWARD_CONFIG",
    show_envvar=True,
    required=True,
    metavar="FILE",
    help="The daemon's YAML config, whose notifications: list names TARGET.",
)
@click.option(
    "--revision",
    metavar="SHA",
    help="The commit a commit-status target marks (pending, 'fleetward notification test').",
)
def notify_test_command(target_name: str, config_file: str, revision: str | None) -> None:
    """Send a test event to TARGET and print the receiver's answer (exit 1 unless 2xx)."""
    settings = read_config_file(config_file).get("notifications", ())
    chosen = [t for t in settings if t.name == target_name]
    if not chosen:
        names = ", ".join(t.name for t in settings) or "none"
        raise UsageError.one(
            f"No notification target named {target_name} in {config_file}",
            f"The targets configured are: {names}.",
            "Pass the name of one entry of notifications:.",
            location=config_file,
        )
    target = prepare(chosen)[0]
    if target.settings.is_commit_status and not revision:
        raise UsageError.one(
            f"Target {target_name} sets commit statuses: it needs a commit",
            "A commit status is set on one commit of the repository.",
            "Pass --revision with the full SHA of a commit the token may mark.",
            location=target_name,
        )
    event = EventLog({"config": config_file}).test(Revision(revision, "git") if revision else None)
    outgoing = request_for(target, event)
    assert outgoing is not None
    with httpx.Client(timeout=target.settings.timeout, follow_redirects=False) as client:
        attempt = send(client, target, outgoing)
    output.stdout.print(
        f"{target_name} ({target.settings.type}): {attempt.describe().split(':')[0]}"
        if attempt.status is not None
        else f"{target_name} ({target.settings.type}): {attempt.error}",
        markup=False,
        highlight=False,
    )
    if attempt.answer:
        output.stdout.print(attempt.answer[:_ANSWER_SHOWN], markup=False, highlight=False)
    if not attempt.delivered:
        raise click.exceptions.Exit(1)
