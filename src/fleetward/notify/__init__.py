"""Notifications: events of runs sent to webhooks, chat and Git hosts' commit statuses.

A `Notifier` is a reporter: it queues events in the store's outbox and
returns; sender threads deliver them (`delivery`). Targets are declared under
`notifications:` in the daemon's config file (`settings`); each type's request
is in `formats`; the events and their JSON body in `events`.
"""

from fleetward.notify.delivery import Attempt, send
from fleetward.notify.events import BODY_VERSION, EventLog
from fleetward.notify.formats import Outgoing, request_for
from fleetward.notify.reporter import Notifier
from fleetward.notify.settings import (
    EVENT_TYPES,
    TARGET_TYPES,
    Target,
    TargetSettings,
    check_unique_names,
    prepare,
)

__all__ = [
    "BODY_VERSION",
    "EVENT_TYPES",
    "TARGET_TYPES",
    "Attempt",
    "EventLog",
    "Notifier",
    "Outgoing",
    "Target",
    "TargetSettings",
    "check_unique_names",
    "prepare",
    "request_for",
    "send",
]
