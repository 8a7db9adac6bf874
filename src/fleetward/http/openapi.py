"""The daemon's OpenAPI 3.1 document (served at /openapi.json), generated from the contract.

Every schema in it comes from the pydantic models of `contract` (request bodies as they
validate, answers as they serialize); this module adds only what the routes know: paths,
methods, parameters, status codes and what each means. `tests/test_api_fuzz.py` drives
the running daemon from the document, so a rule missing from a model fails there.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from fleetward import __version__
from fleetward.http import contract
from fleetward.operations import ProblemRecord

_DESCRIPTIONS = {
    400: "Malformed request: the error body locates the field (`location`)",
    401: "No bearer token (`Authorization: Bearer <token>`)",
    403: "Wrong token, or state-changing endpoints disabled (no token configured)",
    404: "No such operation is kept",
    409: "The operation's state does not allow this, or the daemon is suspended",
    413: "Body too large",
    503: "Not available: the daemon is stopping, has no operations control, or cannot "
    "read its operation log (the body says which)",
}
# Components keep the names clients know (the models' names say what they are in Python).
_COMPONENT_NAMES = {"OperationRecord": "Operation", "ProblemRecord": "Error"}
_BODIES: dict[str, tuple[JsonSchemaMode, Any]] = {
    "create": ("validation", contract.CREATE.adapter),
    "state": ("validation", contract.STATE_CHANGE.adapter),
    "approval": ("validation", contract.APPROVAL.adapter),
    "rollback": ("validation", contract.ROLLBACK.adapter),
    "operation": ("serialization", contract.OperationAnswer),
    "page": ("serialization", contract.PageAnswer),
    "state_answer": ("serialization", contract.StateAnswer),
    "delivery": ("serialization", contract.DeliveryAnswer),
    "alive": ("serialization", contract.Alive),
    "failing": ("serialization", contract.Failing),
    "readiness": ("serialization", contract.Readiness),
    "error": ("serialization", ProblemRecord),
}


class _Schemas(GenerateJsonSchema):
    """pydantic's JSON Schema, as components of one OpenAPI document."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "title": "Operation Id" next to operation_id says nothing

    def normalize_name(self, name: str) -> str:
        normal = super().normalize_name(name)
        return _COMPONENT_NAMES.get(normal, normal)

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        # An answer carries every field, defaulted ones too, unless it leaves the field out
        # (exclude_if); a key a TypedDict may lack is one an answer may lack as well.
        if field["type"] == "typed-dict-field":
            return field.get("required", total)
        if self.mode == "serialization":
            return field.get("serialization_exclude_if") is None
        return super().field_is_required(field, total)


def _json(schema: JsonSchemaValue) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document: schemas generated from the contract's models."""
    adapters = [
        (key, mode, shape if isinstance(shape, TypeAdapter) else TypeAdapter(shape))
        for key, (mode, shape) in _BODIES.items()
    ]
    refs, defs = TypeAdapter.json_schemas(
        adapters, ref_template="#/components/schemas/{model}", schema_generator=_Schemas
    )
    schema = {key: refs[(key, mode)] for key, (mode, _) in _BODIES.items()}
    query = TypeAdapter(contract.ListQuery).json_schema(schema_generator=_Schemas)

    def responses(ok: int, description: str, body: str, *errors: int) -> dict[str, Any]:
        answer = {"description": description, "content": _json(schema[body])}
        out: dict[str, Any] = {str(ok): answer}
        for code in errors:
            out[str(code)] = {"description": _DESCRIPTIONS[code], "content": _json(schema["error"])}
        return out

    operation_id = {
        "name": "operationId",
        "in": "path",
        "required": True,
        "description": "ID of the operation (as created; GET /v0/operations/ lists them).",
        "schema": {"type": "string"},
        "example": "5743470f-7dcc-4a92-8a4b-f41b1cea69ed",
    }
    mutating = (400, 401, 403, 404, 409, 413, 503)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fleetward daemon",
            "version": __version__,
            "description": "Operations of the fleetward reconciler (the operations seed's "
            "API), health, metrics and the Git webhook. Every error answers "
            "{error, reason, resolution, location, parameters}: an unknown path (404) and a "
            "method a path does not answer (405, with Allow) too. Paths under /v0 answer "
            "with or without their trailing slash, without a redirect.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": defs.get("$defs", {}),
        },
        "paths": {
            "/v0/operations/": {
                "get": {
                    "summary": "Get all operations",
                    "parameters": _parameters(query),
                    "responses": responses(
                        200, "Operations, newest first by default", "page", 400, 503
                    ),
                },
                "post": {
                    "summary": "Create a CONVERGE operation",
                    "security": [{"bearer": []}],
                    "requestBody": {"required": True, "content": _json(schema["create"])},
                    "responses": responses(
                        201,
                        "The operation, recorded (CREATED and queued; SCHEDULED for a WINDOW)",
                        "operation",
                        400,
                        401,
                        403,
                        409,
                        413,
                        503,
                    ),
                },
            },
            "/v0/operations/{operationId}/": {
                "get": {
                    "summary": "Get one operation (its status)",
                    "parameters": [operation_id],
                    "responses": responses(200, "The operation", "operation", 404, 503),
                },
                "put": {
                    "summary": "Update the operation's state (cancel, fail, time out, "
                    "reschedule)",
                    "security": [{"bearer": []}],
                    "parameters": [operation_id],
                    "requestBody": {"required": True, "content": _json(schema["state"])},
                    "responses": {
                        **responses(200, "The state was updated", "state_answer", *mutating),
                        "202": {
                            "description": "The operation is running: it stops at its next "
                            "checkpoint (before any write), which had not come within 5 s",
                            "content": _json(schema["state_answer"]),
                        },
                    },
                },
            },
            "/v0/operations/{operationId}/approve": {
                "post": {
                    "summary": "Approve a SCHEDULED operation that waits for manual approval",
                    "security": [{"bearer": []}],
                    "parameters": [operation_id],
                    "requestBody": {"required": False, "content": _json(schema["approval"])},
                    "responses": responses(
                        200,
                        "Approved: it applies now, or when its window opens",
                        "operation",
                        *mutating,
                    ),
                },
            },
            "/v0/rollback": {
                "post": {
                    "summary": "Roll the store back to an earlier apply's revision and pin the "
                    "daemon there (until fleetward resume)",
                    "security": [{"bearer": []}],
                    "requestBody": {"required": True, "content": _json(schema["rollback"])},
                    "responses": {
                        **responses(
                            202,
                            "The rollback operation, queued (trigger rollback): its run applies "
                            "the revision and pins the store to it",
                            "operation",
                            400,
                            401,
                            403,
                            413,
                            503,
                        ),
                        "404": {
                            "description": "The history keeps no apply of that serial or revision",
                            "content": _json(schema["error"]),
                        },
                        "409": {
                            "description": "The store is at that revision already, or the "
                            "daemon is suspended",
                            "content": _json(schema["error"]),
                        },
                    },
                },
            },
            "/v0/webhook": {
                "post": {
                    "summary": "Git push webhook (GitHub/Gitea X-Hub-Signature-256, GitLab "
                    "X-Gitlab-Token)",
                    "requestBody": {"content": _json({"type": "object"})},
                    "responses": {
                        **responses(
                            200,
                            "Acknowledged and ignored (`ignored` says why): a ping, a push "
                            "to another ref, a tag push, another event, a redelivery",
                            "delivery",
                        ),
                        **responses(202, "A run was requested", "delivery", 401, 403, 413),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "responses": {
                        "200": {"description": "Alive", "content": _json(schema["alive"])},
                        "503": {
                            "description": "Stuck or stopped",
                            "content": _json(schema["failing"]),
                        },
                    },
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Reconciling successfully and recently",
                    "responses": {
                        "200": {"description": "Ready", "content": _json(schema["readiness"])},
                        "503": {
                            "description": "Not ready, with reasons",
                            "content": _json(schema["readiness"]),
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({})}},
                }
            },
        },
    }


def _parameters(schema: JsonSchemaValue) -> list[dict[str, Any]]:
    """The query parameters of a model's schema: one per property."""
    out = []
    for name, prop in schema["properties"].items():
        parameter = {"name": name, "in": "query", "schema": dict(prop)}
        if parameter["schema"].get("default", "") is None:
            del parameter["schema"]["default"]  # absent, not null: a query has no null
        if "description" in prop:
            parameter["description"] = parameter["schema"].pop("description")
        out.append(parameter)
    return out
