"""One stored object as people read it: its fields, and the applies that created and changed it.

`state show ADDRESS` prints it and the web view's object page shows it; both match
the object to the store's bounded history by the instant an apply stamps on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetward.model import StoredObject

HISTORY_NOTE = (
    "The store records applies, not which objects each changed: these are the applies "
    "at createdAt and updatedAt; generation counts spec changes (1: none)."
)


def describe_object(
    obj: StoredObject, history: list[dict[str, Any]], triggers: Mapping[str, str]
) -> dict[str, Any]:
    """One object as `state show ADDRESS` prints it, with the applies that touched it.

    Matched by time: an apply stamps every object it writes, and its history
    entry, with the same instant. The history keeps the last 100 applies; an
    older one is shown by its time alone.
    """
    kind, _, ident = obj.key.partition("/")
    created = _event("created", obj.created_at, history, triggers, first=True)
    # The last write is also the one of the revision the object was last applied from:
    # that tells two applies within the same second apart.
    changed = _event(
        "lastChanged", obj.updated_at, history, triggers, first=False,
        revision=obj.applied_revision,
    )  # fmt: skip
    events = [created]
    if obj.updated_at != obj.created_at or changed.get("serial") != created.get("serial"):
        events.append(changed)
    return {
        "address": obj.key,
        "kind": kind,
        "id": ident,
        "state": obj.state.value,
        "drifted": obj.drifted,
        "owner": obj.owner,
        "generation": obj.generation,
        "specHash": obj.spec_hash,
        "appliedRevision": obj.applied_revision,
        "createdAt": obj.created_at,
        "updatedAt": obj.updated_at,
        "history": events,
        "historyNote": HISTORY_NOTE,
        "spec": obj.spec,
        "status": obj.status,
    }


def _event(
    name: str,
    time: str,
    history: list[dict[str, Any]],
    triggers: Mapping[str, str],
    *,
    first: bool,
    revision: str | None = None,
) -> dict[str, Any]:
    matches = [e for e in history if e.get("time") == time]
    if revision is not None:
        matches = [e for e in matches if e.get("revision") == revision] or matches
    event: dict[str, Any] = {"event": name, "time": time}
    if not matches:
        event["serial"] = None  # older than the history kept, or written by hand
        return event
    # Two applies within one second share a time: the first made it, the last changed it.
    entry = matches[0] if first else matches[-1]
    operation = entry.get("operationId")
    event.update(serial=entry.get("serial"), revision=entry.get("revision"), operationId=operation)
    if isinstance(operation, str) and operation in triggers:
        event["trigger"] = triggers[operation]
    return event


__all__ = ["HISTORY_NOTE", "describe_object"]
