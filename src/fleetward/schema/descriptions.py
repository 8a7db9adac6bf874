"""What each manifest field means, shown by editors on hover (the schema's `description`).

Keyed by model and field like `spellings`; a field defined on a base model is found
under the base's name. `tests/test_schema.py` requires an entry for every field.
"""

from __future__ import annotations

from pydantic import BaseModel

FIELDS: dict[tuple[str, str], str] = {
    # -- envelope -------------------------------------------------------------------
    ("Metadata", "name"): "The document's name: lower-case letters, digits and '-', at most 63 "
    "characters, unique among documents of its kind.",
    ("Metadata", "labels"): "Labels (string to string) that SyncPolicy selectors match.",
    ("Metadata", "annotations"): "Free notes (string to string); fleetward never reads them.",
    # -- Fleet (seed 000) -------------------------------------------------------------
    ("FleetSpec", "description"): "What the fleet is.",
    ("FleetSpec", "prune"): "stop (default): an asset removed from the fleet is stopped, never "
    "deleted. forbid: a plan that would stop one fails with Invalid batch fleet size.",
    ("FleetSpec", "assets"): "The complete set of active assets of the fleet.",
    ("AssetSpec", "externalAssetId"): "The asset's key, unique across every fleet "
    "(Asset/<externalAssetId>).",
    ("AssetSpec", "id"): "The asset's UUID; derived from externalAssetId when omitted.",
    ("AssetSpec", "name"): "Display name.",
    ("AssetSpec", "type"): "The asset's type (tasks name it in asset.type).",
    ("AssetSpec", "attributes"): "Free-form attributes (string keys).",
    ("AssetSpec", "labels"): "Labels of this asset (string to string), for selectors.",
    ("AssetSpec", "expect"): "The operation this asset must plan to (CREATE, UPDATE, STOP, "
    "NOTHING); otherwise the plan fails with Failed batch validation.",
    # -- StreamSet (seed 002) ---------------------------------------------------------
    ("StreamSetSpec", "description"): "What the streams are.",
    ("StreamSetSpec", "streams"): "Streams declared inline.",
    ("StreamSetSpec", "csv"): "A CSV file of streams (columns id, name, description, metadata.*), "
    "relative to this manifest file.",
    ("StreamSetSpec", "rows"): "Read from the csv file; never written in a manifest.",
    ("StreamSpec", "id"): "The stream's id (Stream/<id>): no blanks, no '/'.",
    ("StreamSpec", "name"): "The stream's name (AssetRule expressions can match it as Name).",
    ("StreamSpec", "description"): "The stream's description (matched as Description).",
    (
        "StreamSpec",
        "metadata",
    ): "Metadata (string to string); an expression's field may name a key.",
    # -- AssetRule (seed 002) ---------------------------------------------------------
    ("AssetRuleSpec", "id"): "The RuleModel's id, as the seed's API returns it (kept, not used).",
    ("AssetRuleSpec", "name"): "The rule's display name.",
    ("AssetRuleSpec", "description"): "What the rule does.",
    ("AssetRuleSpec", "exampleStreamId"): "A stream the rule was designed on (informative).",
    ("AssetRuleSpec", "automationId"): "The seed's automation id (informative).",
    ("AssetRuleSpec", "state"): "Started: the rule generates assets. Stopped: it generates "
    "nothing new and keeps what it made. The seed's codes 0 and 1 are read too.",
    ("AssetRuleSpec", "expressions"): "Every expression must match a stream; their tokens merge.",
    (
        "AssetRuleSpec",
        "outputs",
    ): "Templates (Asset or Metadata) filled with the captured {tokens}.",
    (
        "AssetRuleSpec",
        "keepOldAssets",
    ): "Keep the generated assets running when the rule is deleted (default: they are stopped).",
    (
        "AssetRuleSpec",
        "keepOldMetadata",
    ): "Keep generated stream metadata when the rule is deleted.",
    ("AssetRuleSpec", "creationTime"): "Server-owned field of a RuleModel response: accepted, "
    "never stored.",
    ("AssetRuleSpec", "modifiedTime"): "Server-owned field of a RuleModel response: accepted, "
    "never stored.",
    ("AssetRuleSpec", "errorInfo"): "Server-owned field of a RuleModel response: accepted, "
    "never stored.",
    ("Expression", "field"): "The stream field matched: Id, Name, Description, or a metadata key.",
    ("Expression", "specifications"): "The sequence of Literal, Delimiter, Wildcard and Group "
    "parts the field's text must consist of.",
    ("Specification", "type"): "Literal or Delimiter: fixed text. Wildcard: any text. Group: text "
    "captured as a token. The seed's codes 1-4 are read too.",
    ("Specification", "value"): "The fixed text of a Literal or Delimiter.",
    ("Specification", "name"): "The token a Group (or a named Wildcard) captures into.",
    ("Specification", "characterType"): "What a Wildcard or Group may take: Any, Letter, Digit, "
    "Alphanumeric (codes 0-3).",
    ("Specification", "characterLength"): "Exactly this many characters (1-1000).",
    ("Specification", "strictValueMappings"): "A Group takes only texts its valueMappings name.",
    ("Specification", "requiredDelimiters"): "Delimiters that must follow (the seed's field).",
    ("Specification", "valueMappings"): "Captured text → the token's value.",
    ("Output", "field"): "Asset: the value is an asset template. Metadata: a stream metadata "
    "template.",
    ("Output", "value"): "The template; {token} placeholders take the captured values, "
    "{streamId} is always available.",
    # -- Workflow (seed 004) ----------------------------------------------------------
    ("_Identified", "id"): "A UUID; derived (UUIDv5) from the names when omitted.",
    ("_Identified", "name"): "The name (a step's id is derived from it and the workflow's).",
    ("WorkflowSpec", "description"): "What the workflow does.",
    ("WorkflowSpec", "country"): "ISO 3166-1 alpha-2 country code (ES, DE, US).",
    ("WorkflowSpec", "schema_"): "The schema the workflow's input follows (a path such as "
    "invoices/v1).",
    ("WorkflowSpec", "draft"): "A draft is stored but not active.",
    ("WorkflowSpec", "disabled"): "A disabled workflow is kept but does not run.",
    ("WorkflowSpec", "steps"): "The steps, run from the first; each step's next edges choose "
    "what follows.",
    ("WorkflowSpec", "rescue"): "Steps run when a step ends KO with no edge for it.",
    ("Step", "action"): "What the step does (email.send, task.create, webhook.post, ...).",
    ("Step", "config"): "The action's settings.",
    ("Step", "summary"): "A one-line summary.",
    ("Step", "notes"): "Free notes.",
    ("Step", "next"): "Edges tried in order after the step: the first that matches its "
    "status (and code) decides.",
    ("NextEdge", "status"): "The step status the edge matches: OK, SKIP, KO, TIMEOUT; empty "
    "matches any.",
    ("NextEdge", "code"): "The result code the edge matches (with status).",
    ("NextEdge", "stepId"): "The step to go to: an id or name of this workflow (the seed writes "
    "step_id).",
    ("NextEdge", "steps"): "Steps run inline when the edge matches.",
    ("NextEdge", "stop"): "End the workflow when the edge matches.",
    # -- Field, TaskType, User (seed 003) ---------------------------------------------
    ("_Entity", "id"): "The entity's UUID; derived from its key when omitted.",
    ("FieldSpec", "xid"): "The field's external id (Field/<xid>), which tasks reference.",
    ("FieldSpec", "name"): "Display name.",
    ("TaskTypeSpec", "xid"): "The task type's external id (TaskType/<xid>).",
    ("TaskTypeSpec", "name"): "Display name.",
    ("TaskTypeSpec", "singleActiveTask"): "At most one open task of this type per asset.",
    ("TaskTypeSpec", "templateSchema"): "A JSON Schema every template item's data must satisfy.",
    ("TaskTypeSpec", "globalAttributes"): "Attributes tasks of this type carry.",
    ("GlobalAttributeDefinition", "name"): "The attribute's name.",
    ("GlobalAttributeDefinition", "type"): "Its JSON type.",
    ("GlobalAttributeDefinition", "description"): "What it holds.",
    ("GlobalAttributeDefinition", "required"): "Whether every task must give it.",
    ("UserSpec", "userName"): "The user's login (User/<userName>), which assigneeIds reference.",
    ("UserSpec", "email"): "The user's e-mail address.",
    ("UserSpec", "vendorId"): "The vendor the user works for.",
    # -- TaskBatch (seed 003) ---------------------------------------------------------
    ("TaskBatchSpec", "description"): "What the batch is.",
    ("TaskBatchSpec", "tasks"): "The tasks, each keyed by xid (unique across every batch).",
    ("TaskSpec", "xid"): "The task's external id (Task/<xid>): no blanks, no '/'.",
    ("TaskSpec", "id"): "The task's id, as the seed's API gives it (empty: none).",
    ("TaskSpec", "field"): "The Field the task belongs to: {xid} or {id}.",
    ("TaskSpec", "asset"): "The asset the task is about: {xid} or {id}, and its type.",
    ("TaskSpec", "taskType"): "The TaskType: {xid} or {id}.",
    ("TaskSpec", "tenantId"): "The tenant (the seed's field).",
    ("TaskSpec", "description"): "What to do.",
    ("TaskSpec", "assigneeIds"): "Assigned users, by {id} or {userName}: a list, or one object.",
    ("TaskSpec", "linkedTasks"): "Related tasks, by {id} or {xid}: a list, or one object.",
    ("TaskSpec", "score"): "The task's score.",
    ("TaskSpec", "increment"): "Score increment (the seed's field).",
    ("TaskSpec", "priority"): "Low, Medium, High or Urgent (any case).",
    ("TaskSpec", "dueDate"): "An ISO 8601 date (2025-05-31) or date-time with a time zone.",
    ("TaskSpec", "startTime"): "An ISO 8601 date-time with a time zone.",
    ("TaskSpec", "duration"): "Minutes, as a number or an ISO 8601 duration (PT1H30M).",
    ("TaskSpec", "delayMinutes"): "Delay in minutes, as a number or an ISO 8601 duration.",
    ("TaskSpec", "workOrderNumber"): "The work order this task belongs to.",
    ("TaskSpec", "source"): "Where the task comes from.",
    ("TaskSpec", "parts"): "Parts the task needs.",
    ("TaskSpec", "formSchema"): "The form the task shows (free-form).",
    ("TaskSpec", "onlyAllowManualScoreUpdate"): "The score changes only by hand.",
    ("TaskSpec", "isDeleted"): "Always false: a task is soft-deleted by removing it from Git.",
    ("TaskSpec", "approvalStatus"): "pending, approved or rejected.",
    ("TaskSpec", "approverIds"): "Users who approve the task.",
    ("TaskSpec", "requestorIds"): "Users who requested it.",
    ("TaskSpec", "template"): "Sub-items created with the task (dependsOn / sameAssigneeAs "
    "link them).",
    ("TaskSpec", "attachments"): "Files attached (bucket, key, region).",
    ("TaskSpec", "parentTaskId"): "The parent task's id.",
    ("TaskSpec", "workflowStepId"): "A step of a declared Workflow this task belongs to.",
    ("TaskSpec", "workflowVersion"): "The workflow's version (v1, or 1).",
    ("TaskSpec", "correlationId"): "An id that ties the task to an outside request.",
    ("TaskSpec", "globalAttributes"): "Values of the task type's global attributes.",
    ("TaskSpec", "status"): "Runtime status, set on create only: people change it later and "
    "reconcile never reverts it.",
    ("TaskSpec", "completedOn"): "Runtime status: when it was completed (set on create only).",
    ("TaskSpec", "resolvedBy"): "Runtime status: who resolved it (set on create only).",
    ("TaskSpec", "resolvedOn"): "Runtime status: when it was resolved (set on create only).",
    ("TaskSpec", "approvedBy"): "Runtime status: who approved it (set on create only).",
    ("TaskSpec", "approvedOn"): "Runtime status: when it was approved (set on create only).",
    ("TaskSpec", "statusAudit"): "Runtime status: <status>On date-times and <status>For minutes.",
    ("EntityRef", "id"): "The referenced entity's id.",
    ("EntityRef", "xid"): "The referenced entity's xid.",
    ("AssetRef", "type"): "The asset's type.",
    ("UserRef", "id"): "The user's id.",
    ("UserRef", "userName"): "The user's userName.",
    ("LinkedTaskRef", "id"): "The linked task's id.",
    ("LinkedTaskRef", "xid"): "The linked task's xid.",
    ("TemplateTaskTypeRef", "id"): "The task type's id.",
    ("TemplateTaskTypeRef", "xid"): "The task type's xid.",
    ("TemplateTaskTypeRef", "name"): "The task type's name (as the seed's template writes it).",
    ("ItemRef", "xid"): "The xid of another item of the same template.",
    ("Part", "picklist"): "The picklist entry (free-form).",
    ("Part", "picklistOptionId"): "The chosen option.",
    ("Part", "quantity"): "How many (0 or more).",
    ("Attachment", "bucket"): "The storage bucket.",
    ("Attachment", "key"): "The object's key in the bucket.",
    ("Attachment", "region"): "The bucket's region.",
    ("TemplateItem", "xid"): "The item's xid, unique within the template.",
    ("TemplateItem", "field"): "The item's Field (default: the task's).",
    ("TemplateItem", "asset"): "The item's asset (default: the task's).",
    ("TemplateItem", "taskType"): "The item's TaskType, by id, xid or name (default: the task's).",
    ("TemplateItem", "data"): "The item's data, checked against the task type's templateSchema.",
    ("TemplateItem", "description"): "What to do.",
    ("TemplateItem", "tenantId"): "The tenant.",
    ("TemplateItem", "isHardAssignee"): "The assignee may not be changed.",
    ("TemplateItem", "eventSource"): "Where the item's event comes from.",
    ("TemplateItem", "dependsOn"): "An item that must be done first.",
    ("TemplateItem", "sameAssigneeAs"): "An item whose assignee this one takes.",
    ("TemplateItem", "globalAttributes"): "Values of global attributes.",
    ("TemplateItem", "workflowStepId"): "A step of a declared Workflow.",
    ("TemplateItem", "workflowVersion"): "The workflow's version (v1, or 1).",
    # -- SyncPolicy (seed 001) --------------------------------------------------------
    ("SyncPolicySpec", "selector"): "The documents this policy governs, and every object they "
    "produce.",
    ("SyncPolicySpec", "schedule"): "When changes are applied: IMMEDIATE, or in cron WINDOWs.",
    ("SyncPolicySpec", "approval"): "auto: applied when due. manual: an operator approves each "
    "operation.",
    ("SyncPolicySpec", "maxStopFraction"): "The largest share (0.0-1.0) of the selected objects "
    "one plan may stop or delete without --allow-mass-stop (default 0.2).",
    ("SyncPolicySpec", "minStopCount"): "Stops or deletes a plan needs before maxStopFraction "
    "judges it (default: the command's --min-stop-count).",
    ("SyncPolicySpec", "suspend"): "Hold every change of the selected objects.",
    ("SyncPolicySpec", "isolateFailures"): "Failure isolation for the selected documents: an "
    "invalid one (and what depends on it) is held at its last applied version while the rest "
    "of the revision applies.",
    ("Selector", "kinds"): "Manifest kinds selected (any SyncPolicy excepted).",
    ("Selector", "names"): "Document names, as globs (prod-*).",
    ("Selector", "matchLabels"): "Labels a document must carry, all of them.",
    ("Selector", "matchExpressions"): "Label requirements (In, NotIn, Exists, DoesNotExist), "
    "all of which must hold.",
    ("LabelRequirement", "key"): "The label's key.",
    ("LabelRequirement", "operator"): "In / NotIn compare the value with values; Exists / "
    "DoesNotExist test the key only.",
    ("LabelRequirement", "values"): "The values In / NotIn compare with (none for Exists, "
    "DoesNotExist).",
    ("Schedule", "type"): "IMMEDIATE: apply as soon as planned. WINDOW: only while a window "
    "is open.",
    ("Schedule", "cron"): "A WINDOW's opening times: a 5-field crontab (minute hour "
    "day-of-month month day-of-week).",
    ("Schedule", "duration"): "How long a WINDOW stays open: 2h, 90m, 1h30m, PT2H (1s to 7d).",
    ("Schedule", "timezone"): "The IANA time zone the cron expression is read in (default UTC).",
}


def describe(cls: type[BaseModel], name: str) -> str | None:
    """The description of field `name` of `cls` (or of the base that defines it)."""
    for klass in cls.__mro__:
        text = FIELDS.get((klass.__name__, name))
        if text is not None:
            return text
    return None
