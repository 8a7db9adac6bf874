"""What the kinds' validators accept beyond their plain types, stated for JSON Schema.

Pydantic writes a field's schema from its annotation; a `mode="before"` validator
that reads other spellings (the seeds' integer enum codes, one object for a list,
`null` for an empty list, ISO 8601 durations, any-case priorities) and an `after`
validator that narrows a value (a UUID, a two-letter country, a 7-day window) are
code it cannot read. Each is stated here once, keyed by model and field, and
`tests/test_schema.py` fails when a field gains a validator without an entry here
(or in `PLAIN_VALIDATORS`, for validators that accept nothing more and narrow
nothing a schema can state).

Models are named by class name, never imported from the kind's module: the kinds
reach this package only through the registry.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from typing import Any

from fleetward.durations import bounded_pattern

JsonSchema = dict[str, Any]
# None: the field is left out of the schema.
Transform = Callable[[JsonSchema], JsonSchema | None]
ModelRule = Callable[[JsonSchema], JsonSchema]

# The longest task duration or delay, in minutes (TaskBatch: 100 years of minutes).
MAX_TASK_MINUTES = 100 * 366 * 24 * 60
PRIORITIES = ("Low", "Medium", "High", "Urgent")
MAX_WINDOW_SECONDS = 7 * 24 * 3600

# What uuid.UUID reads: optional urn:/uuid: prefixes and braces, 32 hex digits, hyphens anywhere.
UUID_PATTERN = r"^(?:urn:)?(?:uuid:)?\{?(?:-*[0-9A-Fa-f]){32}-*\}?$"
# An ISO 8601 duration of weeks, days, hours, minutes and seconds, in either case, with
# blanks around it (years and months have no fixed length and are refused).
_NUMBER = r"\d+(?:\.\d+)?"
ISO_MINUTES_PATTERN = (
    rf"^\s*[Pp](?=\d|[Tt]\d)(?:{_NUMBER}[Ww])?(?:{_NUMBER}[Dd])?"
    rf"(?:[Tt](?=\d)(?:{_NUMBER}[Hh])?(?:{_NUMBER}[Mm])?(?:{_NUMBER}[Ss])?)?\s*$"
)


def _either_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _nullable(schema: JsonSchema) -> JsonSchema:
    """`null` reads as the empty value (bodies from JSON APIs write null for "none")."""
    return {"anyOf": [_without_default(schema), {"type": "null"}], **_annotations(schema)}


def _one_or_many(schema: JsonSchema) -> JsonSchema:
    """The seed writes one object where the field is a list of them."""
    return {"anyOf": [_without_default(schema), schema["items"]], **_annotations(schema)}


def _with_codes(*codes: int) -> Transform:
    """The seed's enums arrive as names or as their integer codes."""

    def widen(schema: JsonSchema) -> JsonSchema:
        names = {"type": "string", "enum": schema["enum"]}
        return {"anyOf": [names, {"type": "integer", "enum": list(codes)}], **_annotations(schema)}

    return widen


def _optional(value: JsonSchema) -> Transform:
    def replace(schema: JsonSchema) -> JsonSchema:
        return {"anyOf": [value, {"type": "null"}], **_annotations(schema)}

    return replace


def _narrowed(**constraints: Any) -> Transform:
    """The generated schema with the constraints an `after` validator adds (on its
    non-null branch when the field is optional)."""

    def narrow(schema: JsonSchema) -> JsonSchema:
        branches = schema.get("anyOf")
        if branches is None:
            return {**schema, **constraints}
        return {
            **schema,
            "anyOf": [b if b.get("type") == "null" else {**b, **constraints} for b in branches],
        }

    return narrow


def _omitted(schema: JsonSchema) -> None:
    """Filled by the loader, never written in a manifest: not offered."""


# ISO 8601 as Python reads it: a date (2025-05-31) and a date-time with a time zone,
# extended or basic format (whether the day exists is the loader's to say).
_DATE = r"\d{4}-?\d{2}-?\d{2}"
_TIME = r"\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?"
_ZONE = r"(?:[Zz]|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d+)?)?)?)"
DATE_TIME_PATTERN = rf"^{_DATE}[Tt ]{_TIME}{_ZONE}$"
DATE_OR_DATE_TIME_PATTERN = rf"^(?:\d{{4}}-\d{{2}}-\d{{2}}|{_DATE}[Tt ]{_TIME}{_ZONE})$"

MINUTES: JsonSchema = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_TASK_MINUTES},
        {"type": "string", "pattern": ISO_MINUTES_PATTERN},
    ]
}
PRIORITY: JsonSchema = {
    "type": "string",
    "anyOf": [
        {"enum": list(PRIORITIES)},
        {"pattern": r"^\s*(?:" + "|".join(_either_case(p) for p in PRIORITIES) + r")\s*$"},
    ],
}
STATUS_AUDIT: JsonSchema = {
    "type": "object",
    "patternProperties": {
        "On$": {"type": "string", "pattern": DATE_TIME_PATTERN},
        "For$": MINUTES["anyOf"][0],
    },
}
WINDOW_DURATION: JsonSchema = {"type": "string", "pattern": bounded_pattern(MAX_WINDOW_SECONDS)}

# (model, field) → how its schema differs from what pydantic writes. A field defined on
# a base model is found under the base's name too.
FIELDS: dict[tuple[str, str], Transform] = {
    # AssetRule: the seed's RuleModel enums, by name or by code.
    ("Specification", "type"): _with_codes(1, 2, 3, 4),
    ("Specification", "characterType"): _with_codes(0, 1, 2, 3),
    ("AssetRuleSpec", "state"): _with_codes(0, 1),
    # Workflow: null for an empty list or map.
    ("NextEdge", "steps"): _nullable,
    ("Step", "next"): _nullable,
    ("Step", "config"): _nullable,
    ("WorkflowSpec", "rescue"): _nullable,
    ("WorkflowSpec", "country"): _narrowed(pattern="^[A-Za-z]{2}$"),
    ("_Identified", "id"): _narrowed(pattern=UUID_PATTERN),
    # Field, TaskType, User and Fleet assets: ids are UUIDs.
    ("_Entity", "id"): _narrowed(pattern=UUID_PATTERN),
    ("AssetSpec", "id"): _narrowed(pattern=UUID_PATTERN),
    # TaskBatch: the seed's task body.
    ("TaskSpec", "assigneeIds"): _one_or_many,
    ("TaskSpec", "linkedTasks"): _one_or_many,
    ("TaskSpec", "duration"): _optional(MINUTES),
    ("TaskSpec", "delayMinutes"): _optional(MINUTES),
    ("TaskSpec", "priority"): _optional(PRIORITY),
    ("TaskSpec", "statusAudit"): _optional(STATUS_AUDIT),
    ("TaskSpec", "dueDate"): _narrowed(pattern=DATE_OR_DATE_TIME_PATTERN),
    **{
        ("TaskSpec", name): _narrowed(pattern=DATE_TIME_PATTERN)
        for name in ("startTime", "completedOn", "resolvedOn", "approvedOn")
    },
    # Pydantic writes a bound on a union (int | float) as `ge`, which JSON Schema ignores.
    ("Part", "quantity"): lambda schema: {
        "type": "number",
        "minimum": 0,
        **_annotations(schema),
    },
    # StreamSet: rows come from the csv file.
    ("StreamSetSpec", "rows"): _omitted,
    # SyncPolicy.
    ("Schedule", "duration"): _optional(WINDOW_DURATION),
    # Five fields (what each may hold, and whether the date exists, is the loader's to say).
    # The IANA names this machine's time zone database holds, as the loader checks them.
    ("Schedule", "timezone"): lambda schema: {
        **schema,
        "enum": sorted(zoneinfo.available_timezones() | {"UTC"}),
    },
    ("Schedule", "cron"): _narrowed(pattern=r"^\s*\S+(?:\s+\S+){4}\s*$"),
    ("SyncPolicySpec", "maxStopFraction"): _narrowed(minimum=0, maximum=1),
    ("SyncPolicySpec", "minStopCount"): _narrowed(minimum=0),
}

# Validators that accept no other spelling and narrow nothing a schema can state: they
# normalise (YAML dates to text, "" to null, upper-case), or check what JSON Schema
# cannot (what a cron field may hold, a task's end time past the year 9999).
PLAIN_VALIDATORS: frozenset[tuple[str, str]] = frozenset(
    {
        ("AssetSpec", "attributes"),
        ("TaskTypeSpec", "templateSchema"),
        ("Selector", "kinds"),  # stated as an enum in `MODELS` below
        ("TaskSpec", "isDeleted"),
        ("LabelRequirement", "values"),  # the model states its arity itself
        # TaskBatch: "" for "no id"; ISO dates and free maps normalised (YAML dates to text).
        *(("EntityRef", "id"), ("UserRef", "id"), ("LinkedTaskRef", "id")),
        *(("TemplateTaskTypeRef", "id"), ("TaskSpec", "id")),
        *(("TaskSpec", "formSchema"), ("TaskSpec", "globalAttributes")),
        *(("TemplateItem", "data"), ("TemplateItem", "globalAttributes")),
        ("Part", "picklist"),
    }
)


def _at_least_one(*names: str) -> ModelRule:
    """A reference needs one of these, non-empty (the models' `_one_of` check)."""

    def require(schema: JsonSchema) -> JsonSchema:
        return {
            **schema,
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
                for name in names
            ],
        }

    return require


def _window_fields(schema: JsonSchema) -> JsonSchema:
    """A WINDOW needs cron and duration; an IMMEDIATE schedule takes neither."""
    both = ["cron", "duration"]
    return {
        **schema,
        "if": {"properties": {"type": {"const": "WINDOW"}}, "required": ["type"]},
        "then": {
            "required": both,
            "properties": {name: {"type": "string"} for name in both},
        },
        "else": {"properties": {name: {"type": "null"} for name in both}},
    }


def _selectable_kinds(kinds: list[str]) -> ModelRule:
    def enumerate_kinds(schema: JsonSchema) -> JsonSchema:
        properties = dict(schema["properties"])
        listed = dict(properties["kinds"])
        listed["items"] = {"type": "string", "enum": [k for k in kinds if k != "SyncPolicy"]}
        properties["kinds"] = listed
        return {**schema, "properties": properties}

    return enumerate_kinds


def model_rules(kinds: list[str]) -> dict[str, ModelRule]:
    """Model → the rules its `model_validator`s (and cross-field validators) add."""
    return {
        "EntityRef": _at_least_one("id", "xid"),
        "AssetRef": _at_least_one("id", "xid"),
        "LinkedTaskRef": _at_least_one("id", "xid"),
        "UserRef": _at_least_one("id", "userName"),
        "TemplateTaskTypeRef": _at_least_one("id", "xid", "name"),
        "Schedule": _window_fields,
        "Selector": _selectable_kinds(kinds),
    }


def _without_default(schema: JsonSchema) -> JsonSchema:
    return {k: v for k, v in schema.items() if k not in _ANNOTATIONS}


def _annotations(schema: JsonSchema) -> JsonSchema:
    return {k: v for k, v in schema.items() if k in _ANNOTATIONS}


_ANNOTATIONS = ("default", "description", "title", "examples")
