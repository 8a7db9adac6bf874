"""JSON Schema (draft 2020-12) of manifest documents, written from the models that validate.

Pydantic writes each model's schema (types, required fields, enums, limits,
`additionalProperties: false` for the `extra="forbid"` models); `ManifestSchema`
adds what pydantic leaves out: every spelling an `AliasChoices` accepts (the
seeds' PascalCase, `step_id`) with at most one of them per object, the spellings
and limits of the kinds' validators (`spellings`), and a description for every
field (`descriptions`), so an editor explains a field on hover.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import AliasChoices, BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from fleetward.kinds import API_VERSION, REGISTRY, Metadata
from fleetward.schema import descriptions, spellings

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ENVELOPE_DESCRIPTIONS = {
    "apiVersion": f"Always {API_VERSION}.",
    "kind": "What the document declares; decides the shape of spec.",
    "metadata": "The document's name (unique per kind), labels for selectors, annotations.",
    "spec": "What the kind declares (see the kind's fields).",
}


class ManifestSchema(GenerateJsonSchema):
    """Pydantic's generator, completed with the spellings and rules the validators add."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Externalassetid": a description says more

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls = schema["cls"]
        json_schema.pop("title", None)
        if "properties" in json_schema:
            json_schema = self._complete(cls, json_schema)
        rule = spellings.model_rules(sorted(REGISTRY)).get(cls.__name__)
        return rule(json_schema) if rule is not None else json_schema

    def _complete(self, cls: type[BaseModel], json_schema: JsonSchemaValue) -> JsonSchemaValue:
        properties: dict[str, Any] = {}
        required = set(json_schema.get("required", ()))
        rules: list[JsonSchemaValue] = []
        for name, info in cls.model_fields.items():
            names = _spellings(name, info.validation_alias)
            generated = json_schema["properties"].get(names[0])
            if generated is None:
                continue  # excluded from the schema by pydantic
            field_schema = _transformed(cls, name, generated)
            if field_schema is None:
                required.discard(names[0])
                continue
            text = descriptions.describe(cls, name)
            if text is not None:
                field_schema = {**field_schema, "description": text}
            for spelling in names:
                properties[spelling] = field_schema
            if len(names) > 1:
                rules.extend(_one_spelling(names, names[0] in required))
                required.discard(names[0])
        out = {**json_schema, "properties": properties}
        out.pop("required", None)
        if required:
            out["required"] = [n for n in json_schema["required"] if n in required]
        if rules:
            out["allOf"] = [*out.get("allOf", ()), *rules]
        return out


def _spellings(name: str, alias: Any) -> list[str]:
    """Every key the loader reads for field `name`, the schema's own spelling first."""
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    if isinstance(alias, str):
        return [alias]
    return [name]


def _transformed(
    cls: type[BaseModel], name: str, generated: JsonSchemaValue
) -> JsonSchemaValue | None:
    for klass in cls.__mro__:
        transform = spellings.FIELDS.get((klass.__name__, name))
        if transform is not None:
            return transform(generated)
    return generated


def _one_spelling(names: list[str], required: bool) -> list[JsonSchemaValue]:
    """At most one spelling of a field per object (the loader refuses both), and one of
    them when the field is required."""
    rules: list[JsonSchemaValue] = [
        {"not": {"anyOf": [{"required": list(pair)} for pair in itertools.combinations(names, 2)]}}
    ]
    if required:
        rules.append({"anyOf": [{"required": [n]} for n in names]})
    return rules


def spec_definitions() -> tuple[dict[str, str], dict[str, Any]]:
    """(kind → the `$defs` name of its spec, every definition), Metadata's under
    `Metadata`; one namespace for all kinds, so shared models are written once."""
    models: list[type[BaseModel]] = [Metadata, *(p.spec_model for p in REGISTRY.values())]
    keys, top = models_json_schema(
        [(m, "validation") for m in models], schema_generator=ManifestSchema
    )
    definitions: dict[str, Any] = top.get("$defs", {})
    names = {m: str(keys[(m, "validation")]["$ref"]).rsplit("/", 1)[1] for m in models}
    if names[Metadata] != "Metadata":
        raise RuntimeError(f"Metadata's definition is named {names[Metadata]!r}")
    return {kind: names[p.spec_model] for kind, p in REGISTRY.items()}, definitions


def envelope(kind: str, spec_ref: str) -> JsonSchemaValue:
    """A document of `kind`: apiVersion, kind, metadata and spec, and nothing else."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {
                "const": API_VERSION,
                "description": ENVELOPE_DESCRIPTIONS["apiVersion"],
            },
            "kind": {"const": kind, "description": ENVELOPE_DESCRIPTIONS["kind"]},
            "metadata": {
                "$ref": "#/$defs/Metadata",
                "description": ENVELOPE_DESCRIPTIONS["metadata"],
            },
            "spec": {"$ref": f"#/$defs/{spec_ref}", "description": ENVELOPE_DESCRIPTIONS["spec"]},
        },
    }
