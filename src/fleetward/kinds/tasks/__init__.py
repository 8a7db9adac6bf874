"""TaskBatch (seed 003): tasks declared in bulk, each `Task/<xid>`; status stays with people.

The kind's public face: the plug-in the registry lists, the spec models, the bulk
report `apply` shows, and the status vocabulary of `tasks set-status`. Inside,
`kind` (expansion, the plug-in) sits above `checks` (the seed's checks 2-5 run in
order; checks 3 and 4) and `schema` (check 1, the spec models); `checks` stands on
`templates` (check 5), which stands on `references` (check 2, the items and world
every check is handed), and all on `status`.
"""

from __future__ import annotations

from fleetward.kinds.tasks.checks import CHECKS, bulk_report, refused_report, targeted_report
from fleetward.kinds.tasks.kind import PLUGIN, TASK, TaskBatchPlugin, end_time, normalize
from fleetward.kinds.tasks.schema import (
    RUNTIME_FIELDS,
    AssetRef,
    Attachment,
    EntityRef,
    ItemRef,
    LinkedTaskRef,
    Part,
    TaskBatchSpec,
    TaskSpec,
    TemplateItem,
    TemplateTaskTypeRef,
    UserRef,
)
from fleetward.kinds.tasks.status import (
    CLOSED_STATUSES,
    OPEN,
    STATUSES,
    is_open,
    known_status,
    set_status,
)

__all__ = [
    "CHECKS",
    "CLOSED_STATUSES",
    "OPEN",
    "PLUGIN",
    "RUNTIME_FIELDS",
    "STATUSES",
    "TASK",
    "AssetRef",
    "Attachment",
    "EntityRef",
    "ItemRef",
    "LinkedTaskRef",
    "Part",
    "TaskBatchPlugin",
    "TaskBatchSpec",
    "TaskSpec",
    "TemplateItem",
    "TemplateTaskTypeRef",
    "UserRef",
    "bulk_report",
    "end_time",
    "is_open",
    "known_status",
    "normalize",
    "refused_report",
    "set_status",
    "targeted_report",
]
