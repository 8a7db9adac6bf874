"""The kind registry: every manifest kind fleetward understands, one module each."""

from __future__ import annotations

from fleetward.kinds import asset_rule, fleet, references, streams, sync_policy, tasks, workflow
from fleetward.kinds.base import (
    API_VERSION,
    Document,
    KindCaches,
    KindPlugin,
    Metadata,
    ObjectKind,
    PlanContext,
)

__all__ = [
    "API_VERSION",
    "KIND_ORDER",
    "OBJECT_KINDS",
    "REGISTRY",
    "Document",
    "KindCaches",
    "KindPlugin",
    "Metadata",
    "ObjectKind",
    "PlanContext",
]

# One line per kind; the order is the order kinds appear in plans.
_PLUGINS: tuple[KindPlugin, ...] = (
    fleet.PLUGIN,
    streams.PLUGIN,
    asset_rule.PLUGIN,
    workflow.PLUGIN,
    references.FIELD_PLUGIN,
    references.TASK_TYPE_PLUGIN,
    references.USER_PLUGIN,
    tasks.PLUGIN,
    sync_policy.PLUGIN,
)

REGISTRY: dict[str, KindPlugin] = {p.kind: p for p in _PLUGINS}
OBJECT_KINDS: dict[str, ObjectKind] = {o.name: o for p in _PLUGINS for o in p.object_kinds}
KIND_ORDER: dict[str, int] = {o: i for i, o in enumerate(OBJECT_KINDS)}
