"""JSON Schema of manifest documents, for editors and CI: `fleetward schema`.

Generated from the models the loader validates with, so the two cannot drift:
every spelling the loader reads is in the schema, every field it refuses is
refused by `additionalProperties: false`.
"""

from __future__ import annotations

from typing import Any

from fleetward.kinds import REGISTRY
from fleetward.schema.generator import DIALECT, ENVELOPE_DESCRIPTIONS, envelope, spec_definitions

__all__ = ["DIALECT", "kind_schema", "manifest_schema"]


def manifest_schema() -> dict[str, Any]:
    """One schema for a document of any kind: the envelope, and `spec` by `kind`."""
    spec_names, definitions = spec_definitions()
    kinds = list(REGISTRY)
    return {
        "$schema": DIALECT,
        "title": "fleetward manifest document",
        "description": "One YAML document of a fleetward manifest repository.",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            **envelope(kinds[0], spec_names[kinds[0]])["properties"],
            "kind": {"enum": kinds, "description": ENVELOPE_DESCRIPTIONS["kind"]},
            "spec": {"description": ENVELOPE_DESCRIPTIONS["spec"]},
        },
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"properties": {"spec": {"$ref": f"#/$defs/{spec_names[kind]}"}}},
            }
            for kind in kinds
        ],
        "$defs": definitions,
    }


def kind_schema(kind: str) -> dict[str, Any]:
    """The schema of a document of one kind, with only the definitions it uses."""
    spec_names, definitions = spec_definitions()
    body = envelope(kind, spec_names[kind])
    return {
        "$schema": DIALECT,
        "title": f"fleetward {kind} document",
        **body,
        "$defs": {name: definitions[name] for name in sorted(_reachable(body, definitions))},
    }


def _reachable(schema: Any, definitions: dict[str, Any]) -> set[str]:
    """The names of the definitions `schema` refers to, directly or through others."""
    found: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name not in found:
                    found.add(name)
                    pending.append(definitions[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found
