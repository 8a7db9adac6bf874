"""A task's runtime status: what people set it to, and which statuses close it.

Status stays with people (`fleetward tasks set-status`), never with Git; the
kind (`kind`) starts a task open and the plan checks (`checks`) count the
open ones, so both read the vocabulary here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

OPEN = "open"
# Statuses after which a task no longer counts as open (single active task), any case.
CLOSED_STATUSES = frozenset(
    {"completed", "complete", "done", "closed", "resolved", "cancelled", "canceled", "rejected"}
)
COMPLETED = frozenset({"completed", "complete", "done"})
RESOLVED = frozenset({"resolved", "closed"})
# What `tasks set-status` accepts: the seed's "open", work under way, approval, and the
# closed statuses above. A typo would otherwise leave a task open under a new name.
STATUSES = (OPEN, "in-progress", "approved", *sorted(CLOSED_STATUSES))


def known_status(text: str) -> str | None:
    """`text` as the status it names (any case, stored lower-case); None if unknown."""
    lowered = text.strip().lower()
    return lowered if lowered in STATUSES else None


def is_open(status: Mapping[str, Any]) -> bool:
    """Open: not soft-deleted and not in a closed status."""
    return not status.get("isDeleted") and (
        str(status.get("status") or OPEN).lower() not in CLOSED_STATUSES
    )


def set_status(
    status: Mapping[str, Any], new: str, who: str, now: str, at: dt.datetime, created: str = ""
) -> dict[str, Any]:
    """The status after a person sets it to `new` at `now`: the seed's audit fields recorded.

    `statusAudit` keeps `<status>On` (when a status was entered) and `<status>For`
    (minutes spent in it, accumulated), as the seed's response shows them. A task
    still in the status it was created with has been in it since `created`.
    """
    out = dict(status)
    old = str(out.get("status") or OPEN)
    audit = dict(out.get("statusAudit") or {})
    entered = audit.get(f"{old}On") or created or None
    before = audit.get(f"{old}For") or 0
    if (
        isinstance(entered, str)
        and isinstance(before, int | float)
        and not isinstance(before, bool)
    ):
        try:
            since = dt.datetime.fromisoformat(entered)
            spent = int((at - since).total_seconds() // 60)  # TypeError when since is naive
            audit[f"{old}For"] = int(before) + max(spent, 0)
        except (ValueError, TypeError, OverflowError):
            pass  # a hand-written audit entry (no zone, not a date): keep it as it is
    audit[f"{new}On"] = now
    out.update(status=new, statusAudit=audit, modifiedBy=who, modifiedOn=now)
    lowered = new.lower()
    if lowered in COMPLETED:
        out.update(completedOn=now)
    if lowered in RESOLVED:
        out.update(resolvedBy=who, resolvedOn=now)
    if lowered == "approved":
        out.update(approvedBy=who, approvedOn=now)
    return out
