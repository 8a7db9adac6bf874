"""The daemon's OpenAPI 3.0 document (served at /openapi.json).

Written by hand, next to the handlers it describes; `tests/test_api_fuzz.py`
drives the running daemon from it, so a field or status missing here fails there.
"""

from __future__ import annotations

from typing import Any

from fleetward import __version__
from fleetward.daemon.control import SETTABLE_STATES
from fleetward.http.bodies import (
    MAX_NAME,
    MAX_REASON,
    MAX_TIMEOUT_SECONDS,
    SCHEDULE_TYPES,
)
from fleetward.operations import OperationState
from fleetward.store.operations import ORDERINGS

MAX_LIMIT = 1000

_ERROR = {"$ref": "#/components/schemas/Error"}
_OPERATION = {"$ref": "#/components/schemas/Operation"}
_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_INSTANT = {"type": "string", "format": "date-time"}

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


def _operation_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "operation_id": {"type": "string", "format": "uuid"},
        "operation_type": {"type": "string", "enum": ["CONVERGE"]},
        "schedule_type": {"type": "string", "enum": list(SCHEDULE_TYPES)},
        "operation_device_query": {"type": "object"},
        "state": {"type": "string", "enum": [s.name for s in OperationState]},
        "state_code": {"type": "integer", "enum": [int(s) for s in OperationState]},
        "trigger": _STRING,
        "created_at": _INSTANT,
        "updated_at": _INSTANT,
        "transitions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["state", "state_code", "at"],
                "properties": {
                    "state": {"type": "string", "enum": [s.name for s in OperationState]},
                    "state_code": {"type": "integer"},
                    "at": _INSTANT,
                    "message": _STRING,
                },
            },
        },
        "revision": _NULLABLE_STRING,
        "ref": _NULLABLE_STRING,
        "plan_summary": {
            "type": "object",
            "nullable": True,
            "additionalProperties": {"type": "integer"},
        },
        "serial": {"type": "integer", "nullable": True},
        "errors": {"type": "array", "items": _ERROR},
        "error_count": {"type": "integer", "minimum": 0},
        "message": _STRING,
        "schedule_args": {
            "type": "object",
            "description": "The window of a WINDOW operation, as requested (UTC).",
            "properties": {"start": _INSTANT, "end": _INSTANT},
        },
        "arguments": {
            "type": "object",
            "description": "The request's arguments (timeout in seconds).",
            "properties": {
                "dryRun": {"type": "boolean"},
                "allowMassStop": {"type": "boolean"},
                "timeout": {"type": "number"},
            },
        },
        "policy": {
            "type": "string",
            "nullable": True,
            "description": "The SyncPolicy whose held changes this operation carries.",
        },
        "waiting_for": {
            "type": "array",
            "description": "What a SCHEDULED operation waits for.",
            "items": {"type": "string", "enum": ["window", "approval", "suspended"]},
        },
        "window": {
            "type": "object",
            "nullable": True,
            "properties": {
                "opens_at": {**_INSTANT, "nullable": True},
                "closes_at": {**_INSTANT, "nullable": True},
            },
        },
        "approval": {
            "type": "object",
            "nullable": True,
            "properties": {
                "required": {"type": "boolean"},
                "approved_by": _NULLABLE_STRING,
                "approved_at": {**_INSTANT, "nullable": True},
            },
        },
        "deadline": {
            **_INSTANT,
            "nullable": True,
            "description": "Past this instant the operation ends TIMEOUT without writing.",
        },
        "plan_digest": {
            "type": "string",
            "nullable": True,
            "description": "Digest of the held changes an approval binds to.",
        },
        "ended_by": {
            "type": "string",
            "nullable": True,
            "description": '"operator" when ended with PUT /v0/operations/{operationId}/.',
        },
    }
    return {
        "type": "object",
        "required": [
            "operation_id",
            "operation_type",
            "schedule_type",
            "state",
            "state_code",
            "created_at",
            "updated_at",
            "transitions",
        ],
        "properties": properties,
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["content"], "properties": {"content": schema}}


def _responses(ok: int, description: str, schema: dict[str, Any], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": description, "content": _json(schema)}}
    for code in errors:
        out[str(code)] = {"description": _DESCRIPTIONS[code], "content": _json(_ERROR)}
    return out


_STATE_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["operationId", "status", "content"],
    "properties": {
        "operationId": _STRING,
        "status": {"type": "string", "enum": [s.name for s in OperationState]},
        "content": _OPERATION,
    },
}

_OPERATION_ID = {
    "name": "operationId",
    "in": "path",
    "required": True,
    "description": "ID of the operation (as created; GET /v0/operations/ lists them).",
    "schema": {"type": "string"},
    "example": "5743470f-7dcc-4a92-8a4b-f41b1cea69ed",
}

_CREATE_BODY = {
    "type": "object",
    "required": ["operation_type"],
    "additionalProperties": False,
    "properties": {
        "operation_type": {"type": "string", "enum": ["CONVERGE"]},
        "schedule_type": {
            "type": "string",
            "nullable": True,
            "enum": [*SCHEDULE_TYPES, None],
            "default": "IMMEDIATE",
            "description": "IMMEDIATE: converge now. WINDOW: converge only between "
            "schedule_args.start and schedule_args.end (required then, and only then).",
        },
        "schedule_args": {
            "type": "object",
            "nullable": True,
            "additionalProperties": False,
            "required": ["start", "end"],
            "properties": {
                "start": {
                    "type": "string",
                    "format": "date-time",
                    "description": "ISO 8601 with a time zone.",
                },
                "end": {
                    "type": "string",
                    "format": "date-time",
                    "description": "After start, and in the future.",
                },
            },
        },
        "operation_device_query": {
            "type": "object",
            "nullable": True,
            "additionalProperties": False,
            "description": "Limits the objects converged (all conditions must hold); empty or "
            "absent: every object.",
            "properties": {
                "kinds": {"type": "array", "items": {"type": "string"}},
                "names": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Globs over object ids (the part after Kind/).",
                },
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "matchExpressions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["key", "operator"],
                        "additionalProperties": False,
                        "properties": {
                            "key": {"type": "string", "minLength": 1},
                            "operator": {
                                "type": "string",
                                "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
                            },
                            "values": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "attributes": {
                    "type": "object",
                    "description": "Asset attributes: each equals the value, or one of a list.",
                },
            },
        },
        "arguments": {
            "type": "object",
            "nullable": True,
            "additionalProperties": False,
            "properties": {
                "dryRun": {
                    "type": "boolean",
                    "nullable": True,
                    "description": "Plan and report; write nothing.",
                },
                "allowMassStop": {
                    "type": "boolean",
                    "nullable": True,
                    "description": "Let the plan stop or delete past the mass-stop guard.",
                },
                "timeout": {
                    "description": "Seconds (> 0) or a duration such as 90s, 10m, 1h; past it "
                    "the operation ends TIMEOUT. At most "
                    f"{MAX_TIMEOUT_SECONDS:g} seconds.",
                    "nullable": True,
                    "oneOf": [
                        {
                            "type": "number",
                            "exclusiveMinimum": True,
                            "minimum": 0,
                            "maximum": MAX_TIMEOUT_SECONDS,
                        },
                        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
                    ],
                },
            },
        },
    },
    "example": {
        "operation_type": "CONVERGE",
        "schedule_type": "WINDOW",
        "schedule_args": {"start": "2030-01-01T22:00:00Z", "end": "2030-01-02T04:00:00Z"},
        "operation_device_query": {"kinds": ["Asset"], "names": ["TRK-*"]},
        "arguments": {"dryRun": False, "allowMassStop": False, "timeout": "1h"},
    },
}

_STATE_BODY = {
    "type": "object",
    "required": ["state"],
    "additionalProperties": False,
    "properties": {
        "state": {
            "type": "string",
            "enum": list(SETTABLE_STATES),
            "description": "The new state (FAILED is the FAILURE state).",
        },
        "reason": {"type": "string", "nullable": True, "maxLength": MAX_REASON},
    },
    "example": {"state": "CANCELLED", "reason": "User requested"},
}

_APPROVE_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "by": {
            "type": "string",
            "nullable": True,
            "maxLength": MAX_NAME,
            "description": 'Default "api".',
        },
        "comment": {"type": "string", "nullable": True, "maxLength": MAX_REASON},
    },
}

_LIST = _content(
    {
        "type": "object",
        "required": ["count", "limit", "offset", "results"],
        "properties": {
            "count": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "results": {"type": "array", "items": _OPERATION},
        },
    }
)

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "fleetward daemon",
        "version": __version__,
        "description": "Operations of the fleetward reconciler (the operations seed's API), "
        "health, metrics and the Git webhook. Every error answers "
        "{error, reason, resolution, location, parameters}: an unknown path (404) and a "
        "method a path does not answer (405, with Allow) too. Paths under /v0 answer with "
        "or without their trailing slash, without a redirect.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Operation": _operation_schema(),
            "Error": {
                "type": "object",
                "required": ["error", "reason", "resolution", "location", "parameters"],
                "properties": {
                    "error": _STRING,
                    "reason": _STRING,
                    "resolution": _STRING,
                    "location": _NULLABLE_STRING,
                    "parameters": {"type": "object"},
                },
            },
        },
    },
    "paths": {
        "/v0/operations/": {
            "get": {
                "summary": "Get all operations",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "state",
                        "in": "query",
                        "description": "A state code (names such as SUCCESS are accepted too).",
                        "schema": {"type": "integer", "enum": [int(s) for s in OperationState]},
                    },
                    {
                        "name": "ordering",
                        "in": "query",
                        "description": "Field to order by; a leading - reverses.",
                        "schema": {
                            "type": "string",
                            "enum": [p + o for o in ORDERINGS for p in ("", "-")],
                        },
                    },
                ],
                "responses": _responses(
                    200, "Operations, newest first by default", _LIST, 400, 503
                ),
            },
            "post": {
                "summary": "Create a CONVERGE operation",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": _json(_CREATE_BODY)},
                "responses": _responses(
                    201,
                    "The operation, recorded (CREATED and queued; SCHEDULED for a WINDOW)",
                    _content(_OPERATION),
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
                "parameters": [_OPERATION_ID],
                "responses": _responses(200, "The operation", _content(_OPERATION), 404, 503),
            },
            "put": {
                "summary": "Update the operation's state (cancel, fail, time out, reschedule)",
                "security": [{"bearer": []}],
                "parameters": [_OPERATION_ID],
                "requestBody": {"required": True, "content": _json(_STATE_BODY)},
                "responses": {
                    **_responses(
                        200,
                        "The state was updated",
                        _STATE_ANSWER,
                        400,
                        401,
                        403,
                        404,
                        409,
                        413,
                        503,
                    ),
                    "202": {
                        "description": "The operation is running: it stops at its next "
                        "checkpoint (before any write), which had not come within 5 s",
                        "content": _json(_STATE_ANSWER),
                    },
                },
            },
        },
        "/v0/operations/{operationId}/approve": {
            "post": {
                "summary": "Approve a SCHEDULED operation that waits for manual approval",
                "security": [{"bearer": []}],
                "parameters": [_OPERATION_ID],
                "requestBody": {"required": False, "content": _json(_APPROVE_BODY)},
                "responses": _responses(
                    200,
                    "Approved: it applies now, or when its window opens",
                    _content(_OPERATION),
                    400,
                    401,
                    403,
                    404,
                    409,
                    413,
                    503,
                ),
            },
        },
        "/v0/webhook": {
            "post": {
                "summary": "Git push webhook (GitHub/Gitea X-Hub-Signature-256, GitLab "
                "X-Gitlab-Token)",
                "requestBody": {"content": _json({"type": "object"})},
                "responses": {
                    "200": {
                        "description": "Acknowledged and ignored (`ignored` says why): a "
                        "ping, a push to another ref, a tag push, another event, a redelivery",
                        "content": _json(_content({})),
                    },
                    **_responses(202, "A run was requested", _content({}), 401, 403, 413),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": _STRING}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process is alive",
                "responses": {
                    "200": {"description": "Alive", "content": _json({"type": "object"})},
                    "503": {
                        "description": "Stuck or stopped",
                        "content": _json({"type": "object"}),
                    },
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Reconciling successfully and recently",
                "responses": {
                    "200": {"description": "Ready", "content": _json({"type": "object"})},
                    "503": {
                        "description": "Not ready, with reasons",
                        "content": _json({"type": "object"}),
                    },
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.0", "content": _json({})}},
            }
        },
    },
}
