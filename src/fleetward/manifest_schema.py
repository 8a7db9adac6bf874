"""A manifest document's envelope (apiVersion, kind, metadata, spec) and its kind's schema.

Turns one parsed YAML document into a `Document`, or into problems located by
their path inside the document (the loader turns paths into lines and columns).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from fleetward.errors import Problem
from fleetward.kinds import API_VERSION, REGISTRY, Document, Metadata
from fleetward.kinds.problems import (
    PathProblem,
    describe,
    did_you_mean,
    missing_field,
    unknown_field,
    validation_problems,
)

ENVELOPE_FIELDS = ("apiVersion", "kind", "metadata", "spec")


def check_shape(raw: Any) -> Problem | None:
    """A document must be a mapping (the reader has bounded its size and aliases)."""
    if not isinstance(raw, dict):
        return Problem(
            "Document is not a mapping",
            f"A manifest document is a mapping with apiVersion, kind, metadata and spec; "
            f"this one is {describe(raw)}.",
            "Write the document as a mapping, or remove it (an empty document is allowed).",
        )
    return None


def validate_document(raw: dict[str, Any], index: int, out: list[Document]) -> list[PathProblem]:
    problems: list[PathProblem] = []
    for key in raw:
        if key not in ENVELOPE_FIELDS:
            problems.append(
                ((key,), True, unknown_field(str(key), "a manifest document", ENVELOPE_FIELDS))
            )
    for key in ENVELOPE_FIELDS:
        if key not in raw:
            problems.append(
                ((), False, missing_field(key, "the document", _ENVELOPE_EXAMPLES[key]))
            )
    if "apiVersion" in raw and raw["apiVersion"] != API_VERSION:
        problems.append(
            (
                ("apiVersion",),
                False,
                Problem(
                    f"Unsupported apiVersion {raw['apiVersion']!r}",
                    f"This version of fleetward reads apiVersion {API_VERSION!r}.",
                    f"Set apiVersion: {API_VERSION}.",
                ),
            )
        )
    kind = raw.get("kind")
    plugin = REGISTRY.get(kind) if isinstance(kind, str) else None
    if "kind" in raw and plugin is None:
        known = sorted(REGISTRY)
        problems.append(
            (
                ("kind",),
                False,
                Problem(
                    f"Unknown kind {kind!r}",
                    f"fleetward knows the kinds {', '.join(known)}.",
                    did_you_mean(str(kind), known, "Use one of the known kinds."),
                    parameters={"kind": kind, "known": known},
                ),
            )
        )
    metadata = None
    if "metadata" in raw:
        try:
            metadata = Metadata.model_validate(raw["metadata"])
        except ValidationError as exc:
            problems.extend(validation_problems(exc, ("metadata",), Metadata, "metadata"))
    spec = None
    if plugin is not None and "spec" in raw:
        try:
            spec = plugin.spec_adapter.validate_python(raw["spec"])
        except ValidationError as exc:
            problems.extend(plugin.schema_problems(exc, ("spec",), raw["spec"]))
    if not problems and plugin is not None and metadata is not None:
        document = Document(plugin.kind, metadata, spec, index)
        problems.extend(plugin.check(document))
        if not problems:
            out.append(document)
    return problems


_ENVELOPE_EXAMPLES = {
    "apiVersion": API_VERSION,
    "kind": "Fleet",
    "metadata": "{name: north-yard}",
    "spec": "{...}",
}
