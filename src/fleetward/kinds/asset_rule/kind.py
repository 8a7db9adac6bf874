"""AssetRule (seed 002, RuleModel): match streams, generate assets and stream metadata.

A document becomes `AssetRule/<name>`; the assets and stream metadata it
generates (`generation`) are objects like any other, owned by the rule.
The seed's PascalCase RuleModel body validates unchanged as a `spec`; the
stored form is camelCase. Matching semantics live in `matching`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, StringConstraints, ValidationError, field_validator

from fleetward.errors import Problem
from fleetward.kinds.asset_rule import generation, lifecycle
from fleetward.kinds.asset_rule.matching import BUILTIN_TOKENS, TOKEN_NAME, placeholders
from fleetward.kinds.base import (
    Document,
    Generated,
    KindCaches,
    KindPlugin,
    ObjectKind,
    Removal,
    Strict,
    declare,
)
from fleetward.kinds.problems import PathProblem, YamlPath, did_you_mean, validation_problems
from fleetward.model import Action, DesiredObject, ObjectKey, Origin, StoredObject


def _alias(name: str, *more: str) -> AliasChoices:
    """camelCase, or the seed's PascalCase (and any extra spelling the seed uses)."""
    return AliasChoices(name, name[0].upper() + name[1:], *more)


def _seed_enum(codes: dict[int, str]) -> Callable[[Any], Any]:
    """The seed's enums arrive as names or as their integer codes."""

    def convert(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value in codes:
            return codes[value]
        return value

    return convert


SpecificationType = Literal["Group", "Wildcard", "Literal", "Delimiter"]
CharacterType = Literal["Any", "Letter", "Digit", "Alphanumeric"]
RuleState = Literal["Started", "Stopped"]


class Specification(Strict):
    type: SpecificationType = Field(validation_alias=_alias("type"))
    value: str | None = Field(default=None, validation_alias=_alias("value"))
    name: str | None = Field(default=None, validation_alias=_alias("name"))
    characterType: CharacterType = Field(default="Any", validation_alias=_alias("characterType"))
    characterLength: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        default=None, validation_alias=_alias("characterLength")
    )
    strictValueMappings: bool = Field(default=False, validation_alias=_alias("strictValueMappings"))
    requiredDelimiters: list[str] | None = Field(
        default=None, validation_alias=_alias("requiredDelimiters")
    )
    valueMappings: dict[str, str] | None = Field(
        default=None, validation_alias=_alias("valueMappings")
    )

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        value = _seed_enum({1: "Group", 2: "Wildcard", 3: "Literal", 4: "Delimiter"})(value)
        if value in (0, "Unspecified"):
            raise ValueError(
                "Unspecified matches nothing: a specification is a Literal, Delimiter, "
                "Wildcard or Group"
            )
        return value

    _character_type = field_validator("characterType", mode="before")(
        _seed_enum({0: "Any", 1: "Letter", 2: "Digit", 3: "Alphanumeric"})
    )


class Expression(Strict):
    field: Annotated[str, StringConstraints(min_length=1)] = Field(validation_alias=_alias("field"))
    specifications: list[Specification] = Field(
        min_length=1, validation_alias=_alias("specifications", "Specification", "specification")
    )


class Output(Strict):
    field: Literal["Asset", "Metadata"] = Field(validation_alias=_alias("field"))
    value: Any = Field(validation_alias=_alias("value"))


# -- output templates (validated per `field` in `check`) --------------------------

Template = Annotated[str, StringConstraints(min_length=1)]


class MetadataTemplate(Strict):
    id: Template = Field(validation_alias=_alias("id"))
    name: str | None = Field(default=None, validation_alias=_alias("name"))
    description: str | None = Field(default=None, validation_alias=_alias("description"))
    sdsTypeCode: str | int | None = Field(default=None, validation_alias=_alias("sdsTypeCode"))
    value: str | int | float | bool | None = Field(default=None, validation_alias=_alias("value"))
    uom: str | None = Field(default=None, validation_alias=_alias("uom"))


class StreamReferenceTemplate(Strict):
    id: Template = Field(validation_alias=_alias("id"))
    description: str | None = Field(default=None, validation_alias=_alias("description"))
    streamId: Template = Field(validation_alias=_alias("streamId"))


class ValueStatusMapping(Strict):
    value: str | int | float | bool | None = Field(default=None, validation_alias=_alias("value"))
    status: int = Field(validation_alias=_alias("status"))
    displayName: str | None = Field(default=None, validation_alias=_alias("displayName"))


class StatusTemplate(Strict):
    streamReferenceId: str | None = Field(
        default=None, validation_alias=_alias("streamReferenceId")
    )
    streamPropertyId: str | None = Field(default=None, validation_alias=_alias("streamPropertyId"))
    valueStatusMappings: list[ValueStatusMapping] = Field(
        default_factory=list, validation_alias=_alias("valueStatusMappings")
    )


class AssetTemplate(Strict):
    id: Template = Field(validation_alias=_alias("id"))
    name: str | None = Field(default=None, validation_alias=_alias("name"))
    assetTypeId: str | None = Field(default=None, validation_alias=_alias("assetTypeId"))
    description: str | None = Field(default=None, validation_alias=_alias("description"))
    metadata: list[MetadataTemplate] = Field(
        default_factory=list, validation_alias=_alias("metadata")
    )
    streamReferences: list[StreamReferenceTemplate] = Field(
        default_factory=list, validation_alias=_alias("streamReferences")
    )
    status: StatusTemplate | None = Field(default=None, validation_alias=_alias("status"))


class AssetRuleSpec(Strict):
    id: str | None = Field(default=None, validation_alias=_alias("id"))
    name: str | None = Field(default=None, validation_alias=_alias("name"))
    description: str | None = Field(default=None, validation_alias=_alias("description"))
    exampleStreamId: str | None = Field(default=None, validation_alias=_alias("exampleStreamId"))
    automationId: str | None = Field(default=None, validation_alias=_alias("automationId"))
    state: RuleState = Field(default="Started", validation_alias=_alias("state"))
    expressions: list[Expression] = Field(min_length=1, validation_alias=_alias("expressions"))
    outputs: list[Output] = Field(min_length=1, validation_alias=_alias("outputs"))
    keepOldAssets: bool = Field(default=False, validation_alias=_alias("keepOldAssets"))
    keepOldMetadata: bool = Field(default=False, validation_alias=_alias("keepOldMetadata"))
    # Server-owned fields of a RuleModel response: accepted so a copied body validates,
    # never stored (fleetward keeps times and ErrorInfo in the rule's status).
    creationTime: Any = Field(default=None, validation_alias=_alias("creationTime"))
    modifiedTime: Any = Field(default=None, validation_alias=_alias("modifiedTime"))
    errorInfo: Any = Field(default=None, validation_alias=_alias("errorInfo"))

    _state = field_validator("state", mode="before")(_seed_enum({0: "Started", 1: "Stopped"}))


# -- normalised form ---------------------------------------------------------------


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != [] and v != {}}


def _specification(s: Specification) -> dict[str, Any]:
    out = _compact(
        {
            "type": s.type,
            "value": s.value,
            "name": s.name,
            "characterLength": s.characterLength,
            "valueMappings": s.valueMappings,
        }
    )
    if s.characterType != "Any":
        out["characterType"] = s.characterType
    if s.strictValueMappings:
        out["strictValueMappings"] = True
    return out


def _output_value(output: Output) -> Any:
    if output.field == "Metadata":
        return {str(k): str(v) for k, v in output.value.items()}
    template = AssetTemplate.model_validate(output.value)
    return template.model_dump(exclude_none=True, exclude_defaults=True)


def normalize(document: Document) -> dict[str, Any]:
    """The stored spec: camelCase, server-owned fields dropped, defaults omitted."""
    spec: AssetRuleSpec = document.spec
    return {
        **_compact(
            {
                "id": spec.id or document.name,
                "name": spec.name or document.name,
                "description": spec.description,
                "exampleStreamId": spec.exampleStreamId,
                "automationId": spec.automationId,
            }
        ),
        "state": spec.state,
        "expressions": [
            {"field": e.field, "specifications": [_specification(s) for s in e.specifications]}
            for e in spec.expressions
        ],
        "outputs": [{"field": o.field, "value": _output_value(o)} for o in spec.outputs],
        "keepOldAssets": spec.keepOldAssets,
        "keepOldMetadata": spec.keepOldMetadata,
    }


# -- status ------------------------------------------------------------------------


def derive_status(
    spec: Mapping[str, Any], previous: Mapping[str, Any] | None, changed: bool
) -> dict[str, Any]:
    """The seed's ExecutionProgress: a Stopped rule keeps its last run's counts."""
    progress = dict((previous or {}).get("executionProgress") or {})
    progress.setdefault("errorInfo", {"errorCount": 0})
    progress["state"] = "Stopped" if spec.get("state") == "Stopped" else "Completed"
    status: dict[str, Any] = {"executionProgress": progress}
    last_run = (previous or {}).get("lastRunTime")
    if last_run is not None:
        status["lastRunTime"] = last_run  # a Stopped rule keeps the time of its last run
    return status


def update_reasons(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    if before.get("state") != after.get("state"):
        return ["stopped" if after.get("state") == "Stopped" else "started"]
    return []


ASSET_RULE = ObjectKind(
    name="AssetRule",
    id_field="metadata.name",
    on_removal=Action.DELETE,
    removal_reason="rule removed from manifests",
    derive_status=derive_status,
    update_reasons=update_reasons,
)
STREAM_METADATA = ObjectKind(
    name="StreamMetadata",
    id_field="id",  # <stream id>/<rule name>: each rule's metadata of a stream is its own object
    on_removal=Action.DELETE,
    removal_reason="no longer produced by its rule",
)


class AssetRulePlugin(KindPlugin):
    kind = "AssetRule"
    spec_model = AssetRuleSpec
    object_kinds = (ASSET_RULE, STREAM_METADATA)

    def check(self, document: Document) -> Iterable[PathProblem]:
        spec: AssetRuleSpec = document.spec
        tokens = yield from _check_specifications(spec)
        yield from _check_outputs(spec, tokens)

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        yield declare("AssetRule", document.name, normalize(document), document, path)

    def generate(
        self,
        documents: tuple[tuple[str, Document], ...],
        objects: Mapping[ObjectKey, DesiredObject],
        locate: Callable[[Origin], str],
        caches: KindCaches,
    ) -> Generated | None:
        return generation.generate(documents, objects, locate, caches)

    def removal(
        self,
        have: StoredObject,
        desired: Mapping[ObjectKey, DesiredObject],
        stored: Mapping[ObjectKey, StoredObject],
        caches: KindCaches,
    ) -> Removal | None:
        return lifecycle.removal(have, desired, stored, caches)

    def references(self, document: Document) -> Iterable[str]:
        """A rule's outputs come from every stream it matches, and which it matches is
        only known by matching them all: a held StreamSet would make its generated
        assets and metadata vanish, so a rule depends on every stream."""
        return ("Stream/*",)


# -- checks within one document -----------------------------------------------------


def _check_specifications(spec: AssetRuleSpec) -> Generator[PathProblem, None, set[str]]:
    """Per-type rules of each specification; returns the token names the rule captures."""
    seen: dict[str, YamlPath] = {}
    for i, expression in enumerate(spec.expressions):
        for j, s in enumerate(expression.specifications):
            path: YamlPath = ("spec", "expressions", i, "specifications", j)
            for problem in _specification_problems(s):
                yield path, False, problem
            if s.name and s.type in ("Group", "Wildcard"):
                if not TOKEN_NAME.match(s.name):
                    yield (
                        (*path, "name"),
                        False,
                        Problem(
                            f"Invalid token name {s.name!r}",
                            "A token name is letters, digits, '_' and '-', starting with a "
                            "letter or '_', so that {name} can name it in an output.",
                            "Rename the token.",
                        ),
                    )
                elif s.name in seen:
                    yield (
                        (*path, "name"),
                        False,
                        Problem(
                            f"Duplicate token name {s.name!r}",
                            f"Token {s.name!r} is already captured at "
                            f"{'.'.join(map(str, seen[s.name]))}; each token has one value.",
                            "Rename one of the two, or capture the text once.",
                        ),
                    )
                else:
                    seen[s.name] = path
    return set(seen) | set(BUILTIN_TOKENS)


def _specification_problems(s: Specification) -> Iterable[Problem]:
    if s.type in ("Literal", "Delimiter"):
        if not s.value:
            yield Problem(
                f"{s.type} without a value",
                f"A {s.type} matches its value exactly, so it needs one.",
                f'Add value: "..." to the {s.type}.',
            )
        if s.name or s.valueMappings:
            yield Problem(
                f"{s.type} cannot capture a token",
                f"A {s.type} matches fixed text; only a Group or a Wildcard captures a token "
                "(name) or maps values (valueMappings).",
                "Remove name/valueMappings, or make it a Group.",
            )
        return
    if s.type == "Group" and not s.name:
        yield Problem(
            "Group without a name",
            "A Group captures a token, and outputs use it as {name}; a Group needs a name.",
            "Add name: <token> to the Group, or make it a Wildcard if nothing uses the text.",
        )
    if s.value is not None:
        yield Problem(
            f"{s.type} cannot have a value",
            f"A {s.type} matches variable text; fixed text is a Literal or a Delimiter.",
            "Remove value, or make the specification a Literal.",
        )
    if s.type == "Wildcard" and (s.valueMappings or s.strictValueMappings):
        yield Problem(
            "Wildcard cannot map values",
            "valueMappings and strictValueMappings belong to a Group.",
            "Make the specification a Group (with a name).",
        )
    if s.strictValueMappings and not s.valueMappings:
        yield Problem(
            "strictValueMappings without valueMappings",
            "A strict Group accepts only the values its valueMappings name, and it names none, "
            "so it can never match.",
            "Add valueMappings, or remove strictValueMappings.",
        )
    if s.requiredDelimiters:
        yield Problem(
            "requiredDelimiters is not supported",
            "The seed does not define what requiredDelimiters requires, and fleetward will not "
            "guess: Delimiter specifications say where tokens end.",
            "Remove requiredDelimiters (null or [] is accepted) and use Delimiter specifications.",
        )


def _check_outputs(spec: AssetRuleSpec, tokens: set[str]) -> Iterable[PathProblem]:
    for k, output in enumerate(spec.outputs):
        path: YamlPath = ("spec", "outputs", k, "value")
        if output.field == "Metadata":
            if not isinstance(output.value, dict) or not output.value:
                yield (
                    path,
                    False,
                    Problem(
                        "Metadata output needs a mapping",
                        "A Metadata output's value maps stream metadata keys to templates, "
                        'e.g. {site: "{site}"}.',
                        "Write the value as a non-empty mapping of key: template.",
                    ),
                )
                continue
            for key, value in output.value.items():
                if not isinstance(key, str):
                    yield (
                        (*path, key),
                        True,
                        Problem(
                            f"Invalid metadata key {key!r}",
                            "Metadata keys are text; YAML reads an unquoted number, true, "
                            "false or null as another type.",
                            f'Quote the key, e.g. "{key}": ….',
                        ),
                    )
                    continue
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    yield (
                        (*path, key),
                        False,
                        Problem(
                            f"Invalid metadata template for {key!r}",
                            "Metadata values are text templates.",
                            f'Quote the value, e.g. {key}: "{{streamId}}".',
                        ),
                    )
                yield from _templates((*path, key), str(key), tokens, is_key=True)
                yield from _templates((*path, key), str(value), tokens)
            continue
        try:
            template = AssetTemplate.model_validate(output.value)
        except ValidationError as exc:
            yield from validation_problems(exc, path, AssetTemplate, "an Asset output")
            continue
        for field_path, text in _strings(template.model_dump(exclude_none=True), path):
            yield from _templates(field_path, text, tokens)


def _strings(value: Any, path: YamlPath) -> Iterable[tuple[YamlPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, i))


def _templates(
    path: YamlPath, text: str, tokens: set[str], is_key: bool = False
) -> Iterable[PathProblem]:
    names = placeholders(text)
    if isinstance(names, str):
        yield path, is_key, Problem(f"Invalid template {text!r}", names + ".", "Fix the braces.")
        return
    for name in names:
        if name not in tokens:
            known = sorted(tokens)
            yield (
                path,
                is_key,
                Problem(
                    f"Unknown placeholder {{{name}}}",
                    f"The rule captures the tokens {', '.join(known)}; {{{name}}} names none "
                    "of them.",
                    did_you_mean(
                        name,
                        known,
                        "Use a token the rule captures, or name a Group (or Wildcard) "
                        f"{name!r} in an expression.",
                    ),
                    parameters={"placeholder": name, "tokens": known},
                ),
            )


PLUGIN = AssetRulePlugin()


def execution_progress(objects: Iterable[StoredObject]) -> dict[str, dict[str, Any]]:
    """Per stored AssetRule, its ExecutionProgress in the seed's shape (PascalCase), with
    the counts fleetward adds; for status files and `state show`."""
    out: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj.kind != "AssetRule":
            continue
        progress = obj.status.get("executionProgress") or {}
        error_info = progress.get("errorInfo") or {}
        out[obj.key.split("/", 1)[1]] = {
            "State": progress.get("state", "Unknown"),
            "ErrorInfo": {"ErrorCount": error_info.get("errorCount", 0)},
            "LastRunTime": obj.status.get("lastRunTime"),
            "StreamsMatched": progress.get("streamsMatched", 0),
            "AssetsProduced": progress.get("assetsProduced", 0),
            "AssetsOverridden": progress.get("assetsOverridden", 0),
            "MetadataProduced": progress.get("metadataProduced", 0),
        }
    return dict(sorted(out.items()))
