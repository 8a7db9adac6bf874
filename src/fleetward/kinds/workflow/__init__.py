"""Workflow (seed 004): a workflow definition, its steps, `next` edges and rescue steps.

The kind's public face: the plug-in the registry lists, the spec models, the ids
and status `workflows show` derives, and the known actions. Inside, `kind` (models,
normalisation, the plug-in) sits above `graph` (reachability, edges) and `actions`
(each action's config schema).
"""

from __future__ import annotations

from fleetward.kinds.workflow.actions import (
    ACTIONS,
    Action,
    AssetUpdate,
    DocumentSign,
    DocumentValidate,
    EmailSend,
    Fail,
    Log,
    Sleep,
    TaskCreate,
    WebhookPost,
)
from fleetward.kinds.workflow.graph import Graph
from fleetward.kinds.workflow.kind import (
    PLUGIN,
    WORKFLOW,
    NextEdge,
    Step,
    WorkflowPlugin,
    WorkflowSpec,
    derive_status,
    normalize,
    step_id,
    workflow_id,
)

__all__ = [
    "ACTIONS",
    "PLUGIN",
    "WORKFLOW",
    "Action",
    "AssetUpdate",
    "DocumentSign",
    "DocumentValidate",
    "EmailSend",
    "Fail",
    "Graph",
    "Log",
    "NextEdge",
    "Sleep",
    "Step",
    "TaskCreate",
    "WebhookPost",
    "WorkflowPlugin",
    "WorkflowSpec",
    "derive_status",
    "normalize",
    "step_id",
    "workflow_id",
]
