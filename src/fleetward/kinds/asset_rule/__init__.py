"""AssetRule (seed 002): match streams, generate assets and stream metadata.

The kind's public face: the plug-in the registry lists, the spec models, and what
`rules preview`, `state show` and status files use. Inside, each module sits above
the ones it uses: `kind` (models, checks, the plug-in) > `lifecycle` (removal of
outputs) > `generation` (the pass over a revision) and `preview` > `outputs` (one
rule over one stream, merging) and `explaining` (why a stream matches) > `matching`.
"""

from __future__ import annotations

from fleetward.kinds.asset_rule.explaining import (
    ExpressionVerdict,
    describe_specification,
    describe_split,
    explain,
)
from fleetward.kinds.asset_rule.kind import (
    PLUGIN,
    AssetRulePlugin,
    AssetRuleSpec,
    AssetTemplate,
    Expression,
    MetadataTemplate,
    Output,
    Specification,
    StatusTemplate,
    StreamReferenceTemplate,
    ValueStatusMapping,
    execution_progress,
)
from fleetward.kinds.asset_rule.matching import MAX_FIELD_LENGTH, compile_rule, match
from fleetward.kinds.asset_rule.outputs import (
    CompiledRule,
    RuleMemo,
    StreamResult,
    compile_outputs,
    evaluate,
)
from fleetward.kinds.asset_rule.preview import Miss, Preview, preview

__all__ = [
    "MAX_FIELD_LENGTH",
    "PLUGIN",
    "AssetRulePlugin",
    "AssetRuleSpec",
    "AssetTemplate",
    "CompiledRule",
    "Expression",
    "ExpressionVerdict",
    "MetadataTemplate",
    "Miss",
    "Output",
    "Preview",
    "RuleMemo",
    "Specification",
    "StatusTemplate",
    "StreamReferenceTemplate",
    "StreamResult",
    "ValueStatusMapping",
    "compile_outputs",
    "compile_rule",
    "describe_specification",
    "describe_split",
    "evaluate",
    "execution_progress",
    "explain",
    "match",
    "preview",
]
