"""SyncPolicy at engine level: which policy governs a change, its windows, device queries.

The kind (`fleetward.kinds.sync_policy`) validates what a manifest says; this package
answers what the engine asks of it: `governance` (which policy governs each owner's
objects, the digest approvals bind to), `windows` (whether a schedule's window is open
at an instant) and `queries` (the operations API's device query over objects, whose
kinds it reads from the registry). Pure: no I/O.
"""

from __future__ import annotations

from fleetward.policy.governance import (
    POLICY_KIND,
    Governance,
    Policy,
    changes_digest,
    owner_labels_of,
    policies_of,
    window_json,
)
from fleetward.policy.queries import DeviceQuery, DeviceQueryError, parse_device_query
from fleetward.policy.windows import WindowState, window_state

__all__ = [
    "POLICY_KIND",
    "DeviceQuery",
    "DeviceQueryError",
    "Governance",
    "Policy",
    "WindowState",
    "changes_digest",
    "owner_labels_of",
    "parse_device_query",
    "policies_of",
    "window_json",
    "window_state",
]
