"""SyncPolicy (seed 001): the kind and its spec models.

The kind's public face: the plug-in the registry lists, the spec models (selectors,
schedule) and what the engine's `fleetward.policy` builds on. Inside, each module sits
above the ones it uses: `kind` (the spec, the plug-in) > `schedule` and `selectors` >
`wording` (the policy's own validation errors).
"""

from __future__ import annotations

from fleetward.kinds.sync_policy.kind import (
    PLUGIN,
    SYNC_POLICY,
    SyncPolicyPlugin,
    SyncPolicySpec,
)
from fleetward.kinds.sync_policy.schedule import (
    MAX_DURATION,
    MIN_WINDOW,
    Schedule,
    cron_trigger,
    crontab_weekdays,
)
from fleetward.kinds.sync_policy.selectors import (
    LabelRequirement,
    Selector,
    labels_hold,
    names_hold,
)
from fleetward.kinds.sync_policy.wording import located_problems, spec_error

__all__ = [
    "MAX_DURATION",
    "MIN_WINDOW",
    "PLUGIN",
    "SYNC_POLICY",
    "LabelRequirement",
    "Schedule",
    "Selector",
    "SyncPolicyPlugin",
    "SyncPolicySpec",
    "cron_trigger",
    "crontab_weekdays",
    "labels_hold",
    "located_problems",
    "names_hold",
    "spec_error",
]
