"""The daemon's HTTP API (Starlette): metrics, health, operations, webhook.

Operations are the seed's: GET /v0/operations/ and /v0/operations/{id}/,
POST /v0/operations/ (create), PUT /v0/operations/{id}/ (set the state), and
POST /v0/operations/{id}/approve; POST /v0/rollback queues a rollback. Bodies are read and answered with the models of
`contract`, the work is the daemon's `ControlApi`, and the document at /openapi.json
is generated from those models (`openapi`).

Reads are open (bind to loopback, or put a proxy in front). Anything that
changes state needs `Authorization: Bearer <api token>`; with no token
configured those endpoints are disabled, not open. The webhook is
authenticated by its own secret instead (HMAC-SHA256 of the body, or
GitLab's token header); with no secret configured it is disabled too.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from fleetward import __version__
from fleetward.daemon.config import Secrets
from fleetward.daemon.control import ControlApi
from fleetward.errors import FleetwardError, Problem, RequestRefused, UsageError
from fleetward.http import contract
from fleetward.http.contract import OperationAnswer
from fleetward.http.openapi import document
from fleetward.http.reading import BadRequest, Reader
from fleetward.http.refusals import refusal_status
from fleetward.http.webhooks import SeenDeliveries, read_delivery, verify_webhook
from fleetward.observe.health import Health
from fleetward.observe.metrics import CONTENT_TYPE, Metrics
from fleetward.operations import Operation, OperationRecord
from fleetward.rollback import refusal_status as rollback_refusal
from fleetward.store import OperationStore
from fleetward.timestamps import now

__all__ = ["ApiContext", "create_app", "error", "verify_webhook"]

T = TypeVar("T")

MAX_WEBHOOK_BODY = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; pushes are far smaller
MAX_REQUEST_BODY = 64 * 1024


@dataclass
class ApiContext:
    health: Health
    metrics: Metrics
    operations: OperationStore
    secrets: Callable[[], Secrets]
    request_run: Callable[[str], Operation | None]  # reason → the operation queued (if known)
    # Operator requests (create with window/query/arguments, PUT state, approve); None:
    # a plain IMMEDIATE create still queues a run, everything else answers 503.
    control: ControlApi | None = None
    # The ref the daemon tracks (--ref, reloaded on SIGHUP): pushes to others are ignored.
    tracked_ref: Callable[[], str] = lambda: "HEAD"
    # POST /v0/rollback: (--to, who) → the rollback operation queued; UsageError when the
    # store's history has no such apply (None: not served, 503).
    rollback: Callable[[str, str], Operation] | None = None


def error(
    status: int,
    what: str,
    reason: str,
    resolution: str,
    location: str = "",
    headers: Mapping[str, str] | None = None,
    **parameters: Any,
) -> JSONResponse:
    response = problem_response(status, Problem(what, reason, resolution, location, parameters))
    response.headers.update(headers or {})
    return response


def create_app(ctx: ApiContext, pages: Sequence[BaseRoute] = ()) -> Starlette:
    """The API's app; `pages` (the web view's routes) are served beside it, after the API's."""
    seen = SeenDeliveries()  # webhook delivery ids answered, for redeliveries

    def metrics(request: Request) -> Response:
        return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE)

    def healthz(request: Request) -> Response:
        if not ctx.health.alive():
            return _answer(
                contract.Failing(
                    reason="the reconcile worker has stopped or is stuck in one run; restart"
                ),
                503,
            )
        return _answer(contract.Alive(version=__version__))

    def readyz(request: Request) -> Response:
        ready, body = ctx.health.readiness()
        return _answer(contract.Readiness.model_validate(body), 200 if ready else 503)

    def openapi(request: Request) -> Response:
        return JSONResponse(document())

    def list_operations(request: Request) -> Response:
        try:
            query = contract.LIST_QUERY.check(dict(request.query_params))
        except BadRequest as exc:
            return problem_response(400, exc.problem)
        try:
            ops, total = ctx.operations.query(
                state=query.state, ordering=query.ordering, limit=query.limit, offset=query.offset
            )
        except FleetwardError as exc:
            return _log_unreadable(exc)
        results = [OperationRecord.of(op) for op in ops]
        page = contract.Page(count=total, limit=query.limit, offset=query.offset, results=results)
        return _answer(contract.PageAnswer(content=page))

    def get_operation(request: Request) -> Response:
        op_id = request.path_params["operation_id"]
        try:
            op = ctx.operations.get(op_id)
        except FleetwardError as exc:
            return _log_unreadable(exc)
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
        return _answer(OperationAnswer(content=OperationRecord.of(op)))

    async def create_operation(request: Request) -> Response:
        body = await _authorized_body(request, ctx.secrets())
        if isinstance(body, Response):
            return body
        try:
            create = contract.CREATE.read(body, {"now": now()})
        except BadRequest as exc:
            return problem_response(400, exc.problem)
        converge = contract.converge_request(create)
        control = ctx.control
        if control is None:
            if not converge.plain:
                return _no_control("Windows, device queries and arguments")
            # Queuing records the operation (a file write): off the event loop.
            op = await run_in_threadpool(ctx.request_run, "api")
            if op is None:
                return error(
                    503,
                    "The daemon is stopping",
                    "No new operations are accepted while it shuts down.",
                    "Retry against the restarted daemon.",
                )
        else:
            try:
                op = await run_in_threadpool(control.create, converge)
            except RequestRefused as exc:
                return problem_response(refusal_status(exc), exc.problem)
        return _answer(OperationAnswer(content=OperationRecord.of(op)), 201)

    async def operator_request(
        request: Request,
        reader: Reader[T],
        what: str,
        call: Callable[[ControlApi, T], Operation],
    ) -> tuple[T, Operation] | Response:
        """Authorise, read the body, and run `call` off the event loop; or the refusal."""
        body = await _authorized_body(request, ctx.secrets())
        if isinstance(body, Response):
            return body
        try:
            parsed = reader.read(body)
        except BadRequest as exc:
            return problem_response(400, exc.problem)
        control = ctx.control
        if control is None:
            return _no_control(what)
        try:
            return parsed, await run_in_threadpool(call, control, parsed)
        except RequestRefused as exc:
            return problem_response(refusal_status(exc), exc.problem)

    async def update_operation(request: Request) -> Response:
        op_id = request.path_params["operation_id"]
        answer = await operator_request(
            request,
            contract.STATE_CHANGE,
            "State changes",
            lambda control, change: control.set_state(op_id, change.target, change.reason or ""),
        )
        if isinstance(answer, Response):
            return answer
        change, op = answer
        if op.state is not change.target and op.state.final:
            # It was running and finished before it reached a checkpoint.
            return error(
                409,
                f"Operation {op.operation_id} ended {op.state.name} first",
                f"It was running and ended {op.state.name} before it could be moved to "
                f"{change.target.name}.",
                "Check the operation: GET /v0/operations/{id}/.",
                location=f"operation {op.operation_id}",
                operationId=op.operation_id,
                state=op.state.name,
            )
        # 202: a running operation stops at its next checkpoint, which had not come yet.
        state_answer = contract.StateAnswer(
            operationId=op.operation_id, status=op.state, content=OperationRecord.of(op)
        )
        return _answer(state_answer, 200 if op.state is change.target else 202)

    async def approve_operation(request: Request) -> Response:
        op_id = request.path_params["operation_id"]
        answer = await operator_request(
            request,
            contract.APPROVAL,
            "Approvals",
            lambda control, approval: control.approve(
                op_id, approval.approver, approval.comment or ""
            ),
        )
        if isinstance(answer, Response):
            return answer
        return _answer(OperationAnswer(content=OperationRecord.of(answer[1])))

    async def rollback(request: Request) -> Response:
        body = await _authorized_body(request, ctx.secrets())
        if isinstance(body, Response):
            return body
        try:
            wanted = contract.ROLLBACK.read(body)
        except BadRequest as exc:
            return problem_response(400, exc.problem)
        if ctx.rollback is None:
            return _no_control("Rollbacks")
        try:
            op = await run_in_threadpool(ctx.rollback, wanted.to.strip(), wanted.requester)
        except RequestRefused as exc:
            return problem_response(refusal_status(exc), exc.problem)
        except UsageError as exc:
            return problem_response(rollback_refusal(exc), exc.problems[0])
        return _answer(OperationAnswer(content=OperationRecord.of(op)), 202)

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
        # Read only once the signature is checked: unsigned requests claim no delivery id.
        delivery = read_delivery(request.headers, body, ctx.tracked_ref())
        answer = contract.Delivery(accepted=False, event=delivery.event, operation_id=None)
        claimed = delivery.delivery_id
        earlier = seen.claim(claimed) if claimed is not None else None
        if earlier is not None:
            again = f"delivery {claimed} was received before"
            answer = answer.model_copy(update={**earlier, "ignored": again})
            return _answer(contract.DeliveryAnswer(content=answer))
        if delivery.ignored is not None:
            answer = answer.model_copy(update={"ignored": delivery.ignored})
            return _answer(contract.DeliveryAnswer(content=answer))
        try:
            op = await run_in_threadpool(ctx.request_run, "webhook")
        except BaseException:
            if claimed is not None:
                seen.release(claimed)  # no run was asked for: the redelivery (on a 500) may ask
            raise
        if claimed is not None:
            if op is None:
                seen.release(claimed)  # nothing was queued (stopping): a redelivery may run
            else:
                seen.answered(claimed, {"operation_id": op.operation_id})
        answer = contract.Delivery(
            accepted=op is not None,
            event=delivery.event,
            operation_id=op.operation_id if op else None,
        )
        return _answer(contract.DeliveryAnswer(content=answer), 202)

    async def operations(request: Request) -> Response:
        if request.method == "POST":
            return await create_operation(request)
        return await run_in_threadpool(list_operations, request)

    async def operation(request: Request) -> Response:
        if request.method == "PUT":
            return await update_operation(request)
        return await run_in_threadpool(get_operation, request)

    routes = [
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi),
        # One route per path, methods dispatched inside: a 405 then lists every method of
        # the path in Allow (two routes on one path would each list only their own).
        *_either_slash("/v0/operations/", operations, ["GET", "POST"]),
        *_either_slash("/v0/operations/{operation_id}/", operation, ["GET", "PUT"]),
        *_either_slash("/v0/operations/{operation_id}/approve", approve_operation, ["POST"]),
        *_either_slash("/v0/rollback", rollback, ["POST"]),
        *_either_slash("/v0/webhook", webhook, ["POST"]),
        *pages,
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )


def _either_slash(path: str, endpoint: Callable[..., Any], methods: list[str]) -> list[Route]:
    """`path` with and without its trailing slash, both answered in place.

    Starlette would redirect the other spelling (307), which clients handle badly: curl
    and many scripts do not follow it, and a POST or PUT must be sent again.
    """
    other = path.removesuffix("/") if path.endswith("/") else path + "/"
    return [Route(path, endpoint, methods=methods), Route(other, endpoint, methods=methods)]


async def _authorized_body(request: Request, secrets: Secrets) -> bytes | Response:
    """The request's body once the bearer token checks out; else the refusal."""
    denied = _authorize(request, secrets)
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
    return body


def _answer(body: BaseModel, status: int = 200) -> JSONResponse:
    """An answer of the contract, as JSON."""
    return JSONResponse(body.model_dump(mode="json"), status)


def problem_response(status: int, problem: Problem) -> JSONResponse:
    """A refusal as the error body of DESIGN §5."""
    return JSONResponse({**problem.to_dict(), "location": problem.location or ""}, status)


def _no_control(what: str) -> JSONResponse:
    return error(
        503,
        "Operations control is not available",
        f"{what} need the daemon's operations control, which this process does not run.",
        "Retry against a daemon that is up (fleetward status shows it); a plain "
        '{"operation_type": "CONVERGE"} still queues a run.',
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, method not allowed) in the API's error body."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return error(
            404,
            f"Nothing at {request.url.path}",
            f"The daemon serves no endpoint at {request.url.path}.",
            "GET /openapi.json lists the API's paths (operations are at /v0/operations/).",
            location="path",
            path=request.url.path,
        )
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error(
            405,
            f"Method {request.method} not allowed",
            f"{request.url.path} answers {allowed or 'other methods'}, not {request.method}.",
            f"Send {allowed.replace(', ', ' or ')} instead." if allowed else "Use another method.",
            location="method",
            headers=exc.headers,
            method=request.method,
            path=request.url.path,
            allowed=[m.strip() for m in allowed.split(",") if m.strip()],
        )
    return error(
        exc.status_code,
        f"{where} refused ({exc.status_code})",
        exc.detail,
        "Check the request against GET /openapi.json.",
        headers=exc.headers,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug, not bad input. Starlette re-raises it after this answer, so uvicorn logs the
    # traceback; the client gets the usual error body instead of a bare text page.
    return error(
        500,
        f"Internal error: {type(exc).__name__}",
        "The daemon hit a bug serving this request.",
        "Check with GET /v0/operations/ whether it took effect, and report it with the "
        "daemon's log.",
    )


def _log_unreadable(exc: FleetwardError) -> Response:
    """The operation log cannot be read (damaged, unreadable): 503 with why, not a 500."""
    problem = exc.problems[0] if exc.problems else Problem(str(exc), "", "")
    return problem_response(503, problem)


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
