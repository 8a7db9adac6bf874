"""Field, TaskType and User (seed 003): the reference entities that tasks point at.

One document declares one entity: `Field/<xid>`, `TaskType/<xid>`, `User/<userName>`.
Each has an `id` (a UUID, derived from its key as UUIDv5 when omitted), so tasks
may reference it by `{id}` or by `{xid}` (`{userName}` for users). A TaskType's
`templateSchema` is a JSON Schema, checked as one when the manifest loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, ClassVar, Literal

import referencing.exceptions
from pydantic import Field as PydanticField
from pydantic import StringConstraints, field_validator

from fleetward.errors import Problem
from fleetward.kinds import schema_bounds
from fleetward.kinds.base import (
    Document,
    EmailAddress,
    KindPlugin,
    ObjectKind,
    Strict,
    canonical_uuid,
    declare,
    derived_id,
    jsonable,
)
from fleetward.kinds.problems import PathProblem
from fleetward.model import Action, DesiredObject

Xid = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[^\s/]+$")]


class _Entity(Strict):
    id: str | None = None

    _check_id = field_validator("id")(lambda v: None if v is None else canonical_uuid(v))


class FieldSpec(_Entity):
    xid: Xid
    name: str


class GlobalAttributeDefinition(Strict):
    """A global attribute tasks of this type may carry (the seed stores, never validates, them)."""

    name: str = PydanticField(min_length=1)
    type: Literal["string", "number", "integer", "boolean", "object", "array"] = "string"
    description: str | None = None
    required: bool = False


class TaskTypeSpec(_Entity):
    xid: Xid
    name: str
    singleActiveTask: bool = False
    templateSchema: dict[str, Any] = PydanticField(default_factory=dict)
    globalAttributes: list[GlobalAttributeDefinition] = PydanticField(default_factory=list)

    @field_validator("templateSchema", mode="before")
    @classmethod
    def _json_schema(cls, value: Any) -> Any:
        return jsonable(value) if isinstance(value, dict) else value


class UserSpec(_Entity):
    userName: Xid
    email: EmailAddress
    vendorId: str | None = None


def _stored(spec: _Entity, kind: str, key: str) -> dict[str, Any]:
    out = spec.model_dump(exclude_none=True)
    out["id"] = spec.id or derived_id(kind, key)
    return out


FIELD = ObjectKind(name="Field", id_field="xid", on_removal=Action.DELETE)
TASK_TYPE = ObjectKind(name="TaskType", id_field="xid", on_removal=Action.DELETE)
USER = ObjectKind(name="User", id_field="userName", on_removal=Action.DELETE)


class _OneEntity:
    """A reference kind's `expand`: its document declares one entity, keyed by the spec
    field its object kind names (`id_field`). Two documents with one key (or, for
    TaskTypes, one name) are a plan-stage error, located at file:line:column."""

    object_kinds: ClassVar[tuple[ObjectKind, ...]]
    located_in_plan: ClassVar[bool] = True

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        (kind,) = self.object_kinds
        spec: _Entity = document.spec
        key = str(getattr(spec, kind.id_field))
        yield declare(kind.name, key, _stored(spec, kind.name, key), document, path)


class FieldPlugin(_OneEntity, KindPlugin):
    kind = "Field"
    spec_model = FieldSpec
    object_kinds = (FIELD,)


class TaskTypePlugin(_OneEntity, KindPlugin):
    kind = "TaskType"
    spec_model = TaskTypeSpec
    object_kinds = (TASK_TYPE,)

    def check(self, document: Document) -> Iterable[PathProblem]:
        spec: TaskTypeSpec = document.spec
        names = [a.name for a in spec.globalAttributes]
        for i, name in enumerate(names):
            if name in names[:i]:
                yield (
                    ("spec", "globalAttributes", i, "name"),
                    False,
                    Problem(
                        f"Duplicate global attribute {name!r}",
                        f"TaskType {spec.xid!r} defines the global attribute {name!r} twice.",
                        "Keep one definition per attribute name.",
                        parameters={"attribute": name},
                    ),
                )
        yield from _template_schema_problems(spec)


class UserPlugin(_OneEntity, KindPlugin):
    kind = "User"
    spec_model = UserSpec
    object_kinds = (USER,)


def _template_schema_problems(spec: TaskTypeSpec) -> Iterator[PathProblem]:
    """A templateSchema must be a JSON Schema that names only its own parts and that data
    can be checked against in bounded time (`schema_bounds`)."""
    schema = spec.templateSchema
    error = schema_bounds.check_schema(schema)
    if error is not None:
        where = schema_bounds.render_schema_path(error.absolute_path)
        yield (
            ("spec", "templateSchema", *error.absolute_path),
            False,
            Problem(
                "templateSchema is not a valid JSON Schema",
                f"At {where}: {error.message}.",
                "Fix the schema (https://json-schema.org/understanding-json-schema/); "
                "an empty mapping accepts any template data.",
                parameters={"taskType": spec.xid, "schemaPath": where},
            ),
        )
        return
    try:
        bad = list(schema_bounds.unresolvable_refs(schema))
    except (referencing.exceptions.Unresolvable, ValueError, TypeError) as exc:
        bad = [((), str(schema.get("$schema", "")), str(exc))]
    for path, ref, why in bad:
        where = schema_bounds.render_schema_path(path)
        yield (
            ("spec", "templateSchema", *path),
            False,
            Problem(
                f"Unresolvable $ref {ref!r} in templateSchema",
                f"At {where}: {why}. A $ref must name a part of the schema itself "
                "(e.g. #/$defs/reading); fleetward fetches no remote schema.",
                "Add the definition the $ref names, or fix the $ref.",
                parameters={"taskType": spec.xid, "schemaPath": where, "ref": ref},
            ),
        )
    if bad:
        return
    for defect in schema_bounds.schema_defects(schema):
        where = schema_bounds.render_schema_path(defect.path)
        yield (
            ("spec", "templateSchema", *defect.path),
            defect.is_key,
            Problem(
                defect.error,
                f"At {where}: {defect.reason}",
                defect.resolution,
                parameters={"taskType": spec.xid, "schemaPath": where, **defect.parameters},
            ),
        )


FIELD_PLUGIN = FieldPlugin()
TASK_TYPE_PLUGIN = TaskTypePlugin()
USER_PLUGIN = UserPlugin()
