"""The daemon's HTTP API (Starlette): metrics, health, operations, webhook.

Reads are open (bind to loopback, or put a proxy in front). Anything that
changes state needs `Authorization: Bearer <api token>`; with no token
configured those endpoints are disabled, not open. The webhook is
authenticated by its own secret instead (HMAC-SHA256 of the body, or
GitLab's token header); with no secret configured it is disabled too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fleetward import __version__
from fleetward.observe.health import Health
from fleetward.observe.metrics import CONTENT_TYPE, Metrics
from fleetward.operations import Operation, OperationState
from fleetward.store.operations import ORDERINGS, OperationLog

MAX_WEBHOOK_BODY = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; pushes are far smaller
MAX_REQUEST_BODY = 64 * 1024
MAX_LIMIT = 1000


@dataclass
class Secrets:
    """Replaced as a whole on SIGHUP; read per request."""

    webhook_secret: str | None = None
    api_token: str | None = None


@dataclass
class ApiContext:
    health: Health
    metrics: Metrics
    operations: OperationLog
    secrets: Callable[[], Secrets]
    request_run: Callable[[str], Operation | None]  # reason → the operation queued (if known)


def error(
    status: int,
    what: str,
    reason: str,
    resolution: str,
    location: str = "",
    headers: Mapping[str, str] | None = None,
    **parameters: Any,
) -> JSONResponse:
    body = {
        "error": what,
        "reason": reason,
        "resolution": resolution,
        "location": location,
        "parameters": parameters,
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def create_app(ctx: ApiContext) -> Starlette:
    def metrics(request: Request) -> Response:
        return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE)

    def healthz(request: Request) -> Response:
        if not ctx.health.alive():
            return JSONResponse(
                {
                    "status": "failing",
                    "reason": "the reconcile worker has stopped or is stuck in one run; restart",
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", "version": __version__})

    def readyz(request: Request) -> Response:
        ready, body = ctx.health.readiness()
        return JSONResponse(body, status_code=200 if ready else 503)

    def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    def list_operations(request: Request) -> Response:
        q = request.query_params
        unknown = sorted(set(q) - {"limit", "offset", "state", "ordering"})
        if unknown:
            return error(
                400,
                f"Unknown query parameter {unknown[0]!r}",
                "GET /v0/operations/ accepts limit, offset, state and ordering.",
                "Remove the parameter.",
                location=f"query.{unknown[0]}",
            )
        try:
            limit = _int(q.get("limit"), "limit", 50, 0, MAX_LIMIT)
            offset = _int(q.get("offset"), "offset", 0, 0, None)
        except ValueError as exc:
            name = str(exc).split(" ", 1)[0]
            return error(
                400,
                f"Invalid {name}",
                str(exc),
                f"Pass {name} as a whole number in range.",
                location=f"query.{name}",
            )
        state = None
        if q.get("state") is not None:
            try:
                state = OperationState.parse(q["state"])
            except (KeyError, ValueError):
                return error(
                    400,
                    "Invalid state",
                    f"{q['state']!r} is not an operation state.",
                    "Pass a state code or name: "
                    + ", ".join(f"{s.value} ({s.name})" for s in OperationState),
                    location="query.state",
                )
        ordering = q.get("ordering", "-created_at")
        if ordering.removeprefix("-") not in ORDERINGS:
            return error(
                400,
                "Invalid ordering",
                f"{ordering!r} is not a field operations can be ordered by.",
                f"Use one of {', '.join(ORDERINGS)}; prefix with - to reverse.",
                location="query.ordering",
            )
        ops, total = ctx.operations.query(
            state=state, ordering=ordering, limit=limit, offset=offset
        )
        return JSONResponse(
            {
                "content": {
                    "count": total,
                    "limit": limit,
                    "offset": offset,
                    "results": [op.to_dict() for op in ops],
                }
            }
        )

    def get_operation(request: Request) -> Response:
        op_id = request.path_params["operation_id"]
        op = ctx.operations.get(op_id)
        if op is None:
            return error(
                404,
                "Operation not found",
                f"No operation {op_id!r} is kept (the log keeps the most recent "
                f"{ctx.operations.limit}).",
                "List operations with GET /v0/operations/.",
                location="path.operationId",
                operationId=op_id,
            )
        return JSONResponse({"content": op.to_dict()})

    async def create_operation(request: Request) -> Response:
        denied = _authorize(request, ctx.secrets())
        if denied is not None:
            return denied
        body = await _read_bounded(request, MAX_REQUEST_BODY)
        if body is None:
            return error(
                413,
                "Request body too large",
                f"More than {MAX_REQUEST_BODY} bytes.",
                "Send the operation's fields only.",
            )
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            return error(400, "Request body is not JSON", str(exc), "Send a JSON object.")
        problem = _check_create(data)
        if problem is not None:
            return problem
        # Queuing records the operation (a file write): off the event loop.
        op = await run_in_threadpool(ctx.request_run, "api")
        if op is None:
            return error(
                503,
                "The daemon is stopping",
                "No new operations are accepted while it shuts down.",
                "Retry against the restarted daemon.",
            )
        return JSONResponse({"content": op.to_dict()}, status_code=201)

    async def webhook(request: Request) -> Response:
        secret = ctx.secrets().webhook_secret
        if not secret:
            return error(
                403,
                "The webhook is disabled",
                "No webhook secret is configured, and an unauthenticated webhook would let "
                "anyone trigger runs.",
                "Set --webhook-secret (or webhook-secret-file in the config) and the same "
                "secret in the Git server's webhook settings.",
            )
        body = await _read_bounded(request, MAX_WEBHOOK_BODY)
        if body is None:
            return error(
                413,
                "Webhook body too large",
                f"More than {MAX_WEBHOOK_BODY} bytes.",
                "Send push events only.",
            )
        verdict = verify_webhook(secret, body, request.headers)
        if verdict is not None:
            return error(
                401,
                "Webhook signature rejected",
                verdict,
                "Configure the same secret in the Git server's webhook settings, "
                "with content type application/json.",
            )
        event = (
            request.headers.get("x-github-event")
            or request.headers.get("x-gitea-event")
            or request.headers.get("x-gitlab-event")
            or "push"
        )
        if event == "ping":
            return JSONResponse({"content": {"accepted": False, "event": event}}, status_code=200)
        op = await run_in_threadpool(ctx.request_run, "webhook")
        return JSONResponse(
            {
                "content": {
                    "accepted": op is not None,
                    "event": event,
                    "operation_id": op.operation_id if op is not None else None,
                }
            },
            status_code=202,
        )

    routes = [
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi),
        Route("/v0/operations/", list_operations, methods=["GET"]),
        Route("/v0/operations/", create_operation, methods=["POST"]),
        Route("/v0/operations/{operation_id}/", get_operation, methods=["GET"]),
        Route("/v0/webhook", webhook, methods=["POST"]),
    ]
    return Starlette(routes=routes)


async def _read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` (read no further: chunked bodies too)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """None if the request proves it knows the secret; else why not.

    GitHub and Gitea send `X-Hub-Signature-256: sha256=<hex HMAC of the body>`
    (Gitea also `X-Gitea-Signature: <hex>`); GitLab sends the secret itself as
    `X-Gitlab-Token`. Every comparison is constant-time.
    """
    key = secret.encode()
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    signature = headers.get("x-hub-signature-256")
    if signature is not None:
        given = signature.strip()
        if not given.startswith("sha256="):
            return "X-Hub-Signature-256 must be sha256=<hex digest>."
        # Bytes, not str: compare_digest refuses non-ASCII text (a 500 for any caller).
        if hmac.compare_digest(given.removeprefix("sha256=").lower().encode(), expected.encode()):
            return None
        return "X-Hub-Signature-256 does not match the body signed with the configured secret."
    gitea = headers.get("x-gitea-signature")
    if gitea is not None:
        if hmac.compare_digest(gitea.strip().lower().encode(), expected.encode()):
            return None
        return "X-Gitea-Signature does not match the body signed with the configured secret."
    token = headers.get("x-gitlab-token")
    if token is not None:
        if hmac.compare_digest(token.encode(), key):
            return None
        return "X-Gitlab-Token does not match the configured secret."
    return (
        "The request carries no signature (X-Hub-Signature-256, X-Gitea-Signature or "
        "X-Gitlab-Token)."
    )


def _authorize(request: Request, secrets: Secrets) -> Response | None:
    if not secrets.api_token:
        return error(
            403,
            "Mutating endpoints are disabled",
            "No API token is configured, so nothing may change state over HTTP.",
            "Set --api-token (or api-token-file in the config) and send "
            "Authorization: Bearer <token>.",
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return error(
            401,
            "Authentication required",
            "This endpoint needs Authorization: Bearer <token>.",
            "Send the API token configured for the daemon.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), secrets.api_token.encode()):
        return error(
            403,
            "Invalid API token",
            "The bearer token does not match the daemon's API token.",
            "Send the token configured with --api-token.",
        )
    return None


def _check_create(data: Any) -> Response | None:
    if not isinstance(data, dict):
        return error(
            400,
            "Request body is not an object",
            "Send a JSON object.",
            'e.g. {"operation_type": "CONVERGE", "schedule_type": "IMMEDIATE"}',
        )
    allowed = {
        "operation_type",
        "schedule_type",
        "schedule_args",
        "operation_device_query",
        "arguments",
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        return error(
            400,
            f"Unknown field {unknown[0]!r}",
            f"Fields: {', '.join(sorted(allowed))}.",
            "Remove the field.",
            location=f"body.{unknown[0]}",
        )
    if data.get("operation_type") != "CONVERGE":
        return error(
            400,
            "Invalid operation_type",
            'operation_type must be "CONVERGE".',
            'Send "operation_type": "CONVERGE".',
            location="body.operation_type",
        )
    schedule = data.get("schedule_type", "IMMEDIATE")
    if schedule != "IMMEDIATE":
        return error(
            400,
            f"schedule_type {schedule!r} is not supported by this daemon",
            "This version converges immediately; windows come with sync policies.",
            'Send "schedule_type": "IMMEDIATE".',
            location="body.schedule_type",
        )
    if data.get("operation_device_query"):
        return error(
            400,
            "operation_device_query is not supported by this daemon",
            "This version converges every object; selectors come with sync policies.",
            "Drop operation_device_query.",
            location="body.operation_device_query",
        )
    return None


def _int(raw: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {raw!r}") from None
    if value < low or (high is not None and value > high):
        upper = f" and at most {high}" if high is not None else ""
        raise ValueError(f"{name} must be at least {low}{upper}; got {value}")
    return value


def _op_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "operation_id": {"type": "string", "format": "uuid"},
            "operation_type": {"type": "string", "enum": ["CONVERGE"]},
            "schedule_type": {"type": "string", "enum": ["IMMEDIATE", "WINDOW"]},
            "operation_device_query": {"type": "object"},
            "state": {"type": "string", "enum": [s.name for s in OperationState]},
            "state_code": {"type": "integer", "enum": [int(s) for s in OperationState]},
            "trigger": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "transitions": {"type": "array", "items": {"type": "object"}},
            "revision": {"type": ["string", "null"]},
            "ref": {"type": ["string", "null"]},
            "plan_summary": {"type": ["object", "null"]},
            "serial": {"type": ["integer", "null"]},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/Error"}},
            "error_count": {"type": "integer"},
            "message": {"type": "string"},
        },
    }


_ERROR = {"$ref": "#/components/schemas/Error"}


def _responses(ok: int, description: str, schema: dict[str, Any], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        str(ok): {"description": description, "content": {"application/json": {"schema": schema}}}
    }
    for code in errors:
        out[str(code)] = {
            "description": {
                400: "Malformed request",
                401: "No bearer token",
                403: "Forbidden or disabled",
                404: "Not found",
                413: "Body too large",
                503: "Not ready / stopping",
            }[code],
            "content": {"application/json": {"schema": _ERROR}},
        }
    return out


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "fleetward daemon",
        "version": __version__,
        "description": "Operations of the fleetward reconciler (the operations seed's API), "
        "health, metrics and the Git webhook.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Operation": _op_schema(),
            "Error": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "reason": {"type": "string"},
                    "resolution": {"type": "string"},
                    "location": {"type": ["string", "null"]},
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
                        "schema": {"type": "integer", "enum": [int(s) for s in OperationState]},
                    },
                    {
                        "name": "ordering",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": [p + o for o in ORDERINGS for p in ("", "-")],
                        },
                    },
                ],
                "responses": _responses(
                    200,
                    "Operations, newest first by default",
                    {
                        "type": "object",
                        "properties": {
                            "content": {
                                "type": "object",
                                "properties": {
                                    "count": {"type": "integer"},
                                    "limit": {"type": "integer"},
                                    "offset": {"type": "integer"},
                                    "results": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Operation"},
                                    },
                                },
                            }
                        },
                    },
                    400,
                ),
            },
            "post": {
                "summary": "Create a CONVERGE operation (run a reconcile now)",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["operation_type"],
                                "properties": {
                                    "operation_type": {"type": "string", "enum": ["CONVERGE"]},
                                    "schedule_type": {"type": "string", "enum": ["IMMEDIATE"]},
                                    "schedule_args": {"type": "object"},
                                    "operation_device_query": {"type": "object"},
                                    "arguments": {"type": "object"},
                                },
                            }
                        }
                    },
                },
                "responses": _responses(
                    201,
                    "The operation that will carry the run",
                    {
                        "type": "object",
                        "properties": {"content": {"$ref": "#/components/schemas/Operation"}},
                    },
                    400,
                    401,
                    403,
                    413,
                    503,
                ),
            },
        },
        "/v0/operations/{operationId}/": {
            "get": {
                "summary": "Get one operation (its status)",
                "parameters": [
                    {
                        "name": "operationId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": _responses(
                    200,
                    "The operation",
                    {
                        "type": "object",
                        "properties": {"content": {"$ref": "#/components/schemas/Operation"}},
                    },
                    404,
                ),
            }
        },
        "/v0/webhook": {
            "post": {
                "summary": "Git push webhook (GitHub/Gitea X-Hub-Signature-256, GitLab X-Gitlab-Token)",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": _responses(
                    202, "A run was requested", {"type": "object"}, 401, 403, 413
                ),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Text exposition format"}},
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process is alive",
                "responses": {"200": {"description": "Alive"}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Reconciling successfully and recently",
                "responses": {
                    "200": {"description": "Ready"},
                    "503": {"description": "Not ready, with reasons"},
                },
            }
        },
    },
}
