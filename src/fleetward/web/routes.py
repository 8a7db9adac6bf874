"""The web view's routes: server-rendered pages, their live stream, their static files.

Pages answer GET only and change nothing. Templates are Jinja2 with autoescape
on, and every value they output also passes `scrub` (no URL credentials). Each
answer forbids caching, framing, inline scripts and referrers, so a `?token=`
never travels further than the first request.

With a UI token configured (`--ui-token`), a page asks for it once: `?token=…`
is checked, answered with a redirect to the same page without it, and a cookie
(an HMAC of the token, HttpOnly, SameSite=Strict) carries it from then on. A
changed token ends every cookie made from the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.resources
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from fleetward import __version__
from fleetward.model import ObjectKey
from fleetward.web import pages
from fleetward.web.sources import WebSources, scrub

COOKIE = "fleetward_ui"
HEARTBEAT = 15.0  # seconds between keep-alive comments on the live stream
REFRESH = 30  # seconds: the meta refresh of pages without JavaScript
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_STATIC = {"style.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}

Handler = Callable[[Request], Response]


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("fleetward.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        finalize=scrub,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["address_url"] = lambda address: (
        "/ui/objects/" + urllib.parse.quote(str(address), safe="/")
    )
    env.filters["query"] = lambda values: urllib.parse.urlencode(
        {k: v for k, v in values.items() if v not in ("", None)}
    )
    env.filters["thousands"] = lambda n: f"{n:,}"
    env.globals["version"] = __version__
    env.globals["symbol"] = pages.symbol
    return env


def web_routes(src: WebSources, ui_token: Callable[[], str | None]) -> list[BaseRoute]:
    """The routes of the web view, to mount beside the API's."""
    env = templates()
    for name in env.list_templates():
        env.get_template(name)  # compiled now: a page's first request does not pay for it
    static = {
        name: importlib.resources.files("fleetward.web").joinpath("static", name).read_bytes()
        for name in _STATIC
    }

    def render(
        request: Request, template: str, http_status: int = 200, **values: Any
    ) -> HTMLResponse:
        body = env.get_template(template).render(
            path=request.url.path,
            live_version=src.live.version,
            refresh=values.pop("refresh", None),
            events=values.pop("events", None),
            **values,
        )
        return HTMLResponse(body, http_status, headers=SECURITY_HEADERS)

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refused = _check_token(request, ui_token(), render)
            if refused is not None:
                return refused
            # Pages read the daemon's memory and may run git or dot: off the event loop.
            return await run_in_threadpool(handler, request)

        return endpoint

    def not_found(request: Request, what: str, hint: str) -> Response:
        return render(request, "not_found.html", 404, title="Not found", what=what, hint=hint)

    def one(
        request: Request,
        template: str,
        title: str,
        values: dict[str, Any] | None,
        missing: tuple[str, str],
    ) -> Response:
        """The page of one thing (`values`), or a 404 saying what is missing (None)."""
        if values is None:
            return not_found(request, *missing)
        return render(request, template, title=title, **values)

    def overview(request: Request) -> Response:
        return render(
            request,
            "overview.html",
            title="Overview",
            refresh=REFRESH,
            events="/ui/events",
            **pages.overview(src),
        )

    def operations(request: Request) -> Response:
        return render(
            request,
            "operations.html",
            title="Operations",
            **pages.operations_page(src, dict(request.query_params)),
        )

    def operation(request: Request) -> Response:
        op_id = request.path_params["operation_id"]
        return one(
            request,
            "operation.html",
            f"Operation {op_id[:8]}",
            pages.operation_page(src, op_id),
            (
                f"No operation {op_id} is kept",
                f"The log keeps the most recent {src.operations.limit} operations.",
            ),
        )

    def objects(request: Request) -> Response:
        return render(
            request,
            "objects.html",
            title="Objects",
            **pages.objects_page(src, dict(request.query_params)),
        )

    def one_object(request: Request) -> Response:
        address = request.path_params["address"]
        return one(
            request,
            "object.html",
            address,
            pages.object_page(src, address),
            (
                f"No object {address} in the store",
                "Search for it on the objects page (by address, label or owner).",
            ),
        )

    def workflows(request: Request) -> Response:
        return render(request, "workflows.html", title="Workflows", **pages.workflows_page(src))

    def workflow(request: Request) -> Response:
        name = request.path_params["name"]
        return one(
            request,
            "workflow.html",
            f"Workflow {name}",
            pages.workflow_page(src, name),
            (f"No workflow {name} in the store", "The workflows page lists them."),
        )

    def workflow_svg(request: Request) -> Response:
        name = request.path_params["name"]
        obj = src.snapshot().objects.get(ObjectKey(f"Workflow/{name}"))
        svg = src.graphs.svg(obj.spec_hash, obj.spec) if obj is not None else None
        if svg is None:
            return Response(b"", 404, headers=SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'"}
        return Response(svg, media_type="image/svg+xml", headers=headers)

    def unknown(request: Request) -> Response:
        return not_found(
            request,
            f"Nothing at {request.url.path}",
            "The overview, operations, objects and workflows pages are linked above.",
        )

    async def events(request: Request) -> Response:
        refused = _check_token(request, ui_token(), None)
        if refused is not None:
            return refused
        return StreamingResponse(
            _stream(src, request),
            media_type="text/event-stream",
            headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            return Response(b"", 404, headers=SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS, "Cache-Control": "max-age=300"}
        return Response(static[name], media_type=_STATIC[name], headers=headers)

    return [
        Route("/", guarded(overview)),
        Route("/ui", guarded(overview)),
        Route("/ui/", guarded(overview)),
        Route("/ui/events", events),
        Route("/ui/static/{name}", asset),
        Route("/ui/operations", guarded(operations)),
        Route("/ui/operations/{operation_id}", guarded(operation)),
        Route("/ui/objects", guarded(objects)),
        Route("/ui/objects/{address:path}", guarded(one_object)),
        Route("/ui/workflows", guarded(workflows)),
        Route("/ui/workflows/{name}.svg", guarded(workflow_svg)),
        Route("/ui/workflows/{name}", guarded(workflow)),
        Route("/ui/{rest:path}", guarded(unknown)),
    ]


async def _stream(src: WebSources, request: Request) -> AsyncIterator[str]:
    """`run` events, one now (the page compares versions) and one per run that ends."""
    live = src.live
    subscription = live.subscribe()
    try:
        yield f"retry: 3000\nevent: run\ndata: {json.dumps(live.event())}\n\n"
        while not live.closed:
            if await subscription.wait(HEARTBEAT):
                if live.closed:
                    break
                yield f"event: run\ndata: {json.dumps(live.event())}\n\n"
            else:
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                break
    finally:
        live.unsubscribe(subscription)


def cookie_value(token: str) -> str:
    """What the cookie holds: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"fleetward web view", hashlib.sha256).hexdigest()


def _check_token(
    request: Request,
    token: str | None,
    render: Callable[..., HTMLResponse] | None,
) -> Response | None:
    """None when the request may see the page; otherwise the answer to give instead."""
    if not token:
        return None
    expected = cookie_value(token)
    given = request.query_params.get("token")
    if given is not None:
        if hmac.compare_digest(cookie_value(given), expected):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + ("?" + urllib.parse.urlencode(rest) if rest else "")
            response = RedirectResponse(target, 303, headers=SECURITY_HEADERS)
            response.set_cookie(
                COOKIE, expected, httponly=True, samesite="strict", path="/", max_age=None
            )
            return response
        return _refuse(request, render, 403, "The token is not the web view's token.")
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), expected.encode()):
        return None
    return _refuse(request, render, 401, "This daemon's web view asks for a token.")


def _refuse(
    request: Request, render: Callable[..., HTMLResponse] | None, status: int, why: str
) -> Response:
    if render is None:
        return Response(why, status, media_type="text/plain", headers=SECURITY_HEADERS)
    return render(request, "token.html", status, title="Token required", why=why)


__all__ = ["COOKIE", "cookie_value", "templates", "web_routes"]
