"""Workflow (seed 004): steps, `next` edges, rescue steps; hash and version on apply.

A document becomes `Workflow/<name>`. Its stored spec is normalised — step ids
filled in (UUIDv5 of workflow and step name when omitted), `step_id` spelled
`stepId`, empty values dropped — so reformatting a file never changes the
workflow's hash, and any change of meaning does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import pycountry
from pydantic import AliasChoices, Field, StringConstraints, ValidationError, field_validator

from fleetward.errors import Problem
from fleetward.kinds.base import (
    Document,
    KindPlugin,
    ObjectKind,
    Strict,
    as_uuid,
    canonical_uuid,
    declare,
    jsonable,
)
from fleetward.kinds.problems import PathProblem, YamlPath, did_you_mean, validation_problems
from fleetward.kinds.workflow.actions import ACTIONS
from fleetward.kinds.workflow.graph import Graph
from fleetward.model import Action, DesiredObject, spec_hash

# Fixed namespace for ids derived from names: the same names give the same ids everywhere.
NAMESPACE = uuid.UUID("6f1d3c1e-2b0a-5c8e-9d47-4f8a1e2b7c90")

StepStatus = Literal["OK", "SKIP", "KO", "TIMEOUT"]
SchemaName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")
]


def _empty_if_null(value: Any, empty: Any) -> Any:
    """Bodies from JSON APIs often carry null for "none": read it as empty."""
    return empty if value is None else value


class NextEdge(Strict):
    status: StepStatus | Literal[""] | None = None  # empty: always
    code: str | None = None
    stepId: str | None = Field(default=None, validation_alias=AliasChoices("stepId", "step_id"))
    steps: list[Step] = Field(default_factory=list)
    stop: bool = False

    _steps = field_validator("steps", mode="before")(lambda v: _empty_if_null(v, []))


class _Identified(Strict):
    """A step or a workflow: a UUID id (any version) or a name to derive it from."""

    id: str | None = None
    name: str | None = None

    _check_id = field_validator("id")(lambda v: None if v is None else canonical_uuid(v))


class Step(_Identified):
    action: str
    config: dict[str, Any] = Field(default_factory=dict)
    summary: str | None = None
    notes: str | None = None
    next: list[NextEdge] = Field(default_factory=list)

    _next = field_validator("next", mode="before")(lambda v: _empty_if_null(v, []))

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, value: Any) -> Any:
        # Free-form like Fleet attributes: string keys only, YAML dates as ISO strings.
        return jsonable(_empty_if_null(value, {}))


class WorkflowSpec(_Identified):
    description: str | None = None
    country: str | None = None
    schema_: SchemaName | None = Field(default=None, validation_alias="schema")
    draft: bool = False
    disabled: bool = False
    steps: list[Step] = Field(min_length=1)
    rescue: list[Step] = Field(default_factory=list)

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str | None) -> str | None:
        if value is not None and (
            len(value) != 2 or pycountry.countries.get(alpha_2=value) is None
        ):
            raise ValueError(
                f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. ES, DE, US)"
            )
        return value.upper() if value is not None else None  # "es" and "ES" are one country

    _rescue = field_validator("rescue", mode="before")(lambda v: _empty_if_null(v, []))


NextEdge.model_rebuild()


def workflow_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"workflow/{name}"))


def step_id(workflow: str, step: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"workflow/{workflow}/step/{step}"))


# -- normalised form ---------------------------------------------------------------


def normalize(document: Document) -> dict[str, Any]:
    """The stored spec: ids filled in, camelCase, empty values dropped (hash-stable)."""
    spec: WorkflowSpec = document.spec
    name = document.name
    names = _step_names(spec, name)

    def step(s: Step) -> dict[str, Any]:
        out: dict[str, Any] = {"id": s.id or step_id(name, s.name or ""), "action": s.action}
        # jsonable: a YAML date in a config (asset.update attributes) is stored as its ISO string.
        config = jsonable(s.config)
        optional = {"name": s.name, "config": config, "summary": s.summary, "notes": s.notes}
        out.update({k: v for k, v in optional.items() if v})
        if s.next:
            out["next"] = [edge(e) for e in s.next]
        return out

    def edge(e: NextEdge) -> dict[str, Any]:
        # A UUID stepId in any spelling (upper case, no dashes) names the step whose id it is.
        target = names.get(e.stepId, as_uuid(e.stepId)) if e.stepId else None
        out = {"status": e.status, "code": e.code, "stepId": target, "stop": e.stop or None}
        normal: dict[str, Any] = {k: v for k, v in out.items() if v}
        if e.steps:
            normal["steps"] = [step(s) for s in e.steps]
        return normal

    optional = {"description": spec.description, "country": spec.country, "schema": spec.schema_}
    return {
        "id": spec.id or workflow_id(name),
        "name": spec.name or name,
        **{k: v for k, v in optional.items() if v},
        "draft": spec.draft,
        "disabled": spec.disabled,
        "steps": [step(s) for s in spec.steps],
        **({"rescue": [step(s) for s in spec.rescue]} if spec.rescue else {}),
    }


def _step_names(spec: WorkflowSpec, workflow: str) -> dict[str, str]:
    """Step name → the id a `stepId` naming it resolves to (names are a convenience)."""
    out: dict[str, str] = {}

    for _, s in _walk(spec):
        if s.name:
            out.setdefault(s.name, s.id or step_id(workflow, s.name))
    return out


# -- status -----------------------------------------------------------------------


def derive_status(
    spec: Mapping[str, Any], previous: Mapping[str, Any] | None, changed: bool
) -> dict[str, Any]:
    """The seed's response fields fleetward computes: hash, version (and whether usable)."""
    version = int((previous or {}).get("version", 0) or 0)
    if previous is None or changed or not version:
        version += 1
    return {
        "hash": spec_hash(spec)[:16],
        "version": version,
        "usable": not spec.get("draft") and not spec.get("disabled"),
    }


def update_reasons(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Name the transitions operators care about, beyond 'spec changed'."""
    reasons = []
    if before.get("draft") and not after.get("draft"):
        reasons.append("draft → active")
    elif not before.get("draft") and after.get("draft"):
        reasons.append("back to draft")
    if not before.get("disabled") and after.get("disabled"):
        reasons.append("disabled")
    elif before.get("disabled") and not after.get("disabled"):
        reasons.append("re-enabled")
    return reasons


WORKFLOW = ObjectKind(
    name="Workflow",
    id_field="metadata.name",
    on_removal=Action.DELETE,
    removal_reason="workflow removed from manifests",
    derive_status=derive_status,
    update_reasons=update_reasons,
)


class WorkflowPlugin(KindPlugin):
    kind = "Workflow"
    spec_model = WorkflowSpec
    object_kinds = (WORKFLOW,)

    def check(self, document: Document) -> Iterable[PathProblem]:
        spec: WorkflowSpec = document.spec
        yield from _missing_names(spec)
        yield from _actions(spec)
        yield from Graph(normalize(document)).problems()

    def expand(self, document: Document, path: str) -> Iterable[DesiredObject]:
        yield declare("Workflow", document.name, normalize(document), document, path)


def _walk(spec: WorkflowSpec) -> Iterable[tuple[YamlPath, Step]]:
    def walk(steps: list[Step], path: YamlPath) -> Iterable[tuple[YamlPath, Step]]:
        for i, s in enumerate(steps):
            yield (*path, i), s
            for j, e in enumerate(s.next):
                yield from walk(e.steps, (*path, i, "next", j, "steps"))

    yield from walk(spec.steps, ("spec", "steps"))
    yield from walk(spec.rescue, ("spec", "rescue"))


def _missing_names(spec: WorkflowSpec) -> Iterable[PathProblem]:
    for path, s in _walk(spec):
        if s.id is None and not s.name:
            yield (
                path,
                False,
                Problem(
                    "Step has neither id nor name",
                    "A step's id is derived from the workflow's and the step's name when omitted, "
                    "so a step without an id needs a name.",
                    "Give the step a name (or an explicit UUID id).",
                ),
            )


def _actions(spec: WorkflowSpec) -> Iterable[PathProblem]:
    known = sorted(ACTIONS)
    for path, s in _walk(spec):
        action = ACTIONS.get(s.action)
        if action is None:
            yield (
                (*path, "action"),
                False,
                Problem(
                    f"Unknown action {s.action!r}",
                    f"fleetward knows the actions {', '.join(known)}.",
                    did_you_mean(s.action, known, "Use one of the known actions."),
                    parameters={"action": s.action, "known": known},
                ),
            )
            continue
        try:
            action.config.validate_python(s.config)
        except ValidationError as exc:
            yield from validation_problems(
                exc, (*path, "config"), action.model, f"the config of {s.action}"
            )


PLUGIN = WorkflowPlugin()
