"""Operations control over real HTTP, against the running daemon: create, PUT state, approve.

The seed's endpoints (POST /v0/operations/, PUT /v0/operations/{id}/, GET list
and detail) and the approve extension, as a client sees them: status codes,
bodies, the bearer token, and the error body of every refusal. One daemon
serves the module; windows lie in the future, so the operations they make
stay SCHEDULED until the test ends them. The last test serves the API with
no operations control (uvicorn in a thread, still real HTTP).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import uvicorn
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    DaemonProcess,
    Daemons,
    Reply,
    Workspace,
    assert_error_body,
    daemons_fixture,
    http,
    module_daemon,
    wait_until,
    ws_fixture,
)

from fleetward.daemon.config import Secrets
from fleetward.http.app import ApiContext, create_app
from fleetward.http.openapi import document
from fleetward.store.suspension import Suspension, clear_suspension, write_suspension
from fleetward.observe.health import Health
from fleetward.observe.metrics import Metrics
from fleetward.operations import Operation
from fleetward.store.operations import OperationLog
from fleetward.store.suspension import Suspension, clear_suspension, write_suspension

TOKEN = "token-of-the-operator"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
UNKNOWN = "00000000-0000-4000-8000-000000000000"
FINAL = ("SUCCESS", "FAILURE", "CANCELLED", "TIMEOUT")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with module_daemon(tmp_path_factory.mktemp("control"), api_token=TOKEN) as daemon:
        yield daemon


def send(daemon: DaemonProcess, method: str, path: str, body: Any = None, **headers: str) -> Reply:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return http(method, daemon.url + path, body=raw, headers={**AUTH, **headers})


def create(daemon: DaemonProcess, **fields: Any) -> dict[str, Any]:
    reply = send(daemon, "POST", "/v0/operations/", {"operation_type": "CONVERGE", **fields})
    assert reply.status == 201, reply.text
    assert set(reply.json()) == {"content"}
    op: dict[str, Any] = reply.json()["content"]
    return op


def window(hours_from_now: float = 24, length: float = 2, tz: str = "+00:00") -> dict[str, str]:
    offset = dt.timezone(dt.timedelta(hours=int(tz[:3]), minutes=int(tz[4:])))
    start = dt.datetime.now(offset).replace(microsecond=0) + dt.timedelta(hours=hours_from_now)
    return {"start": start.isoformat(), "end": (start + dt.timedelta(hours=length)).isoformat()}


def scheduled(daemon: DaemonProcess, **fields: Any) -> dict[str, Any]:
    """A WINDOW operation whose window opens tomorrow: SCHEDULED until ended."""
    return create(daemon, schedule_type="WINDOW", schedule_args=window(), **fields)


def put_state(daemon: DaemonProcess, op_id: str, state: str, reason: str | None = None) -> Reply:
    body: dict[str, Any] = {"state": state}
    if reason is not None:
        body["reason"] = reason
    return send(daemon, "PUT", f"/v0/operations/{op_id}/", body)


def listing(daemon: DaemonProcess, query: str = "") -> dict[str, Any]:
    reply = daemon.get("/v0/operations/" + (f"?{query}" if query else ""))
    assert reply.status == 200, reply.text
    content: dict[str, Any] = reply.json()["content"]
    return content


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)  # Python 3.11 reads "Z"


OPERATION_FIELDS = set(document()["components"]["schemas"]["Operation"]["properties"])


# -- POST /v0/operations/ ----------------------------------------------------------------------


def test_a_plain_request_is_201_with_the_operation_and_runs(api: DaemonProcess) -> None:
    op = create(api)
    # `held` is there only when failure isolation held documents back (it is not here).
    assert set(op) == OPERATION_FIELDS - {"held"}
    assert (op["operation_type"], op["schedule_type"], op["trigger"]) == (
        "CONVERGE",
        "IMMEDIATE",
        "api",
    )
    assert op["state"] in ("CREATED", *FINAL) and op["transitions"][0]["state"] == "CREATED"
    assert api.wait_operation(op["operation_id"])["state"] == "SUCCESS"


def test_a_window_request_is_scheduled_with_its_window_in_utc(api: DaemonProcess) -> None:
    asked = window(hours_from_now=30, length=3, tz="+02:00")
    op = create(
        api,
        schedule_type="WINDOW",
        schedule_args=asked,
        operation_device_query={"kinds": ["Asset"], "names": ["TRK-*"]},
        arguments={"dryRun": True, "timeout": "10m"},
    )
    assert (op["state"], op["state_code"], op["schedule_type"]) == ("SCHEDULED", 100, "WINDOW")
    start, end = op["schedule_args"]["start"], op["schedule_args"]["end"]
    assert start.endswith("Z") and end.endswith("Z")
    assert utc(start) == dt.datetime.fromisoformat(asked["start"])
    assert utc(end) == dt.datetime.fromisoformat(asked["end"])
    assert "window" in op["waiting_for"]
    assert op["operation_device_query"]["kinds"] == ["Asset"]
    assert op["operation_device_query"]["names"] == ["TRK-*"]
    assert op["arguments"]["dryRun"] is True and op["arguments"]["timeout"] == 600
    assert api.operation(op["operation_id"]) == op  # recorded as answered


# -- PUT /v0/operations/{id}/ ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "became"), [("CANCELLED", "CANCELLED"), ("FAILED", "FAILURE"), ("TIMEOUT", "TIMEOUT")]
)
def test_put_ends_a_scheduled_operation(api: DaemonProcess, asked: str, became: str) -> None:
    op = scheduled(api)
    reply = put_state(api, op["operation_id"], asked, "User requested — ✓ naïve")
    assert reply.status == 200, reply.text
    body = reply.json()
    assert set(body) == {"operationId", "status", "content"}
    assert (body["operationId"], body["status"]) == (op["operation_id"], became)
    ended = body["content"]
    assert ended["state"] == became and ended["transitions"][-1]["state"] == became
    assert "User requested — ✓ naïve" in ended["transitions"][-1].get("message", "")
    assert api.operation(op["operation_id"])["state"] == became


def test_put_on_a_final_operation_is_409_and_changes_nothing(api: DaemonProcess) -> None:
    op = scheduled(api)
    assert put_state(api, op["operation_id"], "CANCELLED").status == 200
    before = api.operation(op["operation_id"])
    for state in ("FAILED", "TIMEOUT", "SCHEDULED", "CANCELLED"):
        body = assert_error_body(put_state(api, op["operation_id"], state), 409)
        assert "CANCELLED" in body["reason"], body
    assert api.operation(op["operation_id"]) == before


def test_put_scheduled_on_a_scheduled_operation_is_409(api: DaemonProcess) -> None:
    op = scheduled(api)
    assert_error_body(put_state(api, op["operation_id"], "SCHEDULED"), 409)
    assert api.operation(op["operation_id"])["state"] == "SCHEDULED"
    assert put_state(api, op["operation_id"], "CANCELLED").status == 200


@pytest.mark.parametrize("op_id", [UNKNOWN, "not-a-uuid", "%E2%9C%93", "0" * 300])
def test_put_and_approve_of_an_unknown_operation_are_404(api: DaemonProcess, op_id: str) -> None:
    assert_error_body(put_state(api, op_id, "CANCELLED"), 404)
    assert_error_body(send(api, "POST", f"/v0/operations/{op_id}/approve", {}), 404)
    assert_error_body(api.get(f"/v0/operations/{op_id}/"), 404)


# -- POST /v0/operations/{id}/approve -----------------------------------------------------------


def test_approving_an_operation_that_waits_for_no_approval_is_409(api: DaemonProcess) -> None:
    op = scheduled(api)
    body = assert_error_body(send(api, "POST", f"/v0/operations/{op['operation_id']}/approve"), 409)
    assert body["parameters"].get("operationId") == op["operation_id"]
    assert api.operation(op["operation_id"])["approval"] is None
    assert put_state(api, op["operation_id"], "CANCELLED").status == 200


MANUAL_POLICY = """\
apiVersion: fleetward/v1
kind: SyncPolicy
metadata:
  name: north-by-hand
spec:
  selector: {kinds: [Fleet], names: [north-yard]}
  approval: manual
"""


def test_a_change_held_for_approval_applies_once_approved(ws: Workspace, daemons: Daemons) -> None:
    repo, _ = ws.repo()
    repo.commit("north by hand", {"manifests/policies/north.yaml": MANUAL_POLICY})
    daemon = daemons.start(repo.root, ws.path("state"), api_token=TOKEN)

    def held() -> dict[str, Any] | None:
        waiting = [op for op in daemon.operations() if "approval" in op["waiting_for"]]
        return waiting[0] if waiting else None

    op = daemon.wait(held, what="an operation waiting for approval")
    assert (op["state"], op["policy"]) == ("SCHEDULED", "north-by-hand")
    assert op["approval"]["required"] is True and op["approval"]["approved_by"] is None

    unauthorised = http("POST", f"{daemon.url}/v0/operations/{op['operation_id']}/approve")
    assert_error_body(unauthorised, 401)
    reply = send(
        daemon,
        "POST",
        f"/v0/operations/{op['operation_id']}/approve",
        {"by": "alice", "comment": "ok"},
    )
    assert reply.status == 200, reply.text
    approved = reply.json()["content"]
    assert approved["approval"]["approved_by"] == "alice"
    assert "approval" not in approved["waiting_for"]
    assert daemon.wait_operation(op["operation_id"])["state"] == "SUCCESS"
    again = send(daemon, "POST", f"/v0/operations/{op['operation_id']}/approve")
    assert_error_body(again, 409)


# -- GET: list and detail ----------------------------------------------------------------------


def test_list_pages_and_orders_operations_of_every_state(api: DaemonProcess) -> None:
    kept = scheduled(api)
    cancelled = scheduled(api)
    assert put_state(api, cancelled["operation_id"], "CANCELLED").status == 200

    everything = listing(api, "limit=1000")["results"]
    total = listing(api)["count"]
    assert len(everything) == total >= 3
    ids = [op["operation_id"] for op in everything]
    paged: list[str] = []
    for offset in range(0, total, 2):
        page = listing(api, f"limit=2&offset={offset}")
        assert (page["count"], page["limit"], page["offset"]) == (total, 2, offset)
        paged += [op["operation_id"] for op in page["results"]]
    assert paged == ids

    oldest = [
        op["operation_id"] for op in listing(api, "limit=1000&ordering=created_at")["results"]
    ]
    assert oldest == list(reversed(ids))
    newest = [
        op["operation_id"] for op in listing(api, "limit=1000&ordering=-created_at")["results"]
    ]
    assert newest == ids
    created = [op["created_at"] for op in listing(api, "limit=1000&ordering=created_at")["results"]]
    assert created == sorted(created)

    codes = [op["state_code"] for op in listing(api, "limit=1000&ordering=state")["results"]]
    assert codes == sorted(codes) and {80, 100, 110} <= set(codes)
    codes_desc = [op["state_code"] for op in listing(api, "limit=1000&ordering=-state")["results"]]
    assert codes_desc == sorted(codes, reverse=True)

    # PUT moved `cancelled` last of all by updated_at (ties keep creation order).
    updated = listing(api, "limit=1000&ordering=updated_at")["results"]
    assert [op["updated_at"] for op in updated] == sorted(op["updated_at"] for op in updated)
    assert updated[-1]["updated_at"] >= api.operation(cancelled["operation_id"])["updated_at"]

    assert [op["operation_id"] for op in listing(api, "state=110")["results"]].count(
        cancelled["operation_id"]
    ) == 1
    assert kept["operation_id"] in [
        op["operation_id"] for op in listing(api, "state=100")["results"]
    ]
    assert put_state(api, kept["operation_id"], "CANCELLED").status == 200


def test_detail_is_the_listed_operation(api: DaemonProcess) -> None:
    op = scheduled(api)
    listed = next(
        o for o in listing(api, "limit=1000")["results"] if o["operation_id"] == op["operation_id"]
    )
    reply = api.get(f"/v0/operations/{op['operation_id']}/")
    assert reply.status == 200 and reply.json() == {"content": listed}
    assert put_state(api, op["operation_id"], "CANCELLED").status == 200


# -- the bearer token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v0/operations/", {"operation_type": "CONVERGE"}),
        ("PUT", "/v0/operations/{id}/", {"state": "CANCELLED"}),
        ("POST", "/v0/operations/{id}/approve", {"by": "mallory"}),
    ],
)
def test_every_change_needs_the_bearer_token(
    api: DaemonProcess, method: str, path: str, body: dict[str, Any]
) -> None:
    op = scheduled(api)
    url = api.url + path.format(id=op["operation_id"])
    raw = json.dumps(body).encode()
    before = listing(api)["count"]

    missing = http(method, url, body=raw, headers={"Content-Type": "application/json"})
    assert_error_body(missing, 401)
    assert missing.headers.get("www-authenticate") == "Bearer"
    assert_error_body(http(method, url, body=raw, headers={"Authorization": f"Basic {TOKEN}"}), 401)
    assert_error_body(http(method, url, body=raw, headers={"Authorization": "Bearer wrong"}), 403)
    assert_error_body(
        http(method, url, body=b"not even json", headers={"Authorization": "Bearer x"}), 403
    )

    assert listing(api)["count"] == before
    assert api.operation(op["operation_id"]) == op
    assert put_state(api, op["operation_id"], "CANCELLED").status == 200


# -- malformed requests --------------------------------------------------------------------


def _future(**change: Any) -> dict[str, Any]:
    return {
        "operation_type": "CONVERGE",
        "schedule_type": "WINDOW",
        "schedule_args": window(),
        **change,
    }


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b'"CONVERGE"', "body"),
        (b"{}", "body.operation_type"),
        (b'{"operation_type": "CONVERGE", "arguments": {"timeout": NaN}}', "body"),
        (b"[" * 5000 + b"]" * 5000, "body"),
        ({"operation_type": "DELETE"}, "body.operation_type"),
        ({"operation_type": "CONVERGE", "shedule_type": "WINDOW"}, "body.shedule_type"),
        ({"operation_type": "CONVERGE", "schedule_type": "LATER"}, "body.schedule_type"),
        ({"operation_type": "CONVERGE", "schedule_type": "WINDOW"}, "body.schedule_args"),
        ({"operation_type": "CONVERGE", "schedule_args": window()}, "body.schedule_args"),
        (_future(schedule_args={"start": "2030-01-01T22:00:00Z"}), "body.schedule_args.end"),
        (
            _future(schedule_args={"start": "tomorrow", "end": "2030-01-01T22:00:00Z"}),
            "body.schedule_args.start",
        ),
        (
            _future(schedule_args={"start": "2030-01-01T22:00:00", "end": "2030-01-02T22:00:00Z"}),
            "body.schedule_args.start",
        ),
        (
            _future(schedule_args={"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}),
            "body.schedule_args.end",
        ),
        (
            _future(schedule_args={"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}),
            "body.schedule_args.end",
        ),
        (_future(schedule_args={**window(), "tz": "UTC"}), "body.schedule_args.tz"),
        (_future(operation_device_query=["Asset"]), "body.operation_device_query"),
        (_future(operation_device_query={"kind": "Asset"}), "body.operation_device_query.kind"),
        (_future(operation_device_query={"kinds": [1]}), "body.operation_device_query.kinds[0]"),
        (_future(arguments={"dryrun": True}), "body.arguments.dryrun"),
        (_future(arguments={"dryRun": "yes"}), "body.arguments.dryRun"),
        (_future(arguments={"allowMassStop": 1}), "body.arguments.allowMassStop"),
        (_future(arguments={"timeout": 0}), "body.arguments.timeout"),
        (_future(arguments={"timeout": -5}), "body.arguments.timeout"),
        (_future(arguments={"timeout": "soon"}), "body.arguments.timeout"),
        (_future(arguments={"timeout": 1e308}), "body.arguments.timeout"),
        (_future(arguments={"timeout": True}), "body.arguments.timeout"),
        (_future(arguments=[]), "body.arguments"),
    ],
)
def test_a_malformed_create_is_400_located_and_records_nothing(
    api: DaemonProcess, body: Any, location: str
) -> None:
    before = listing(api)["count"]
    reply = send(api, "POST", "/v0/operations/", body)
    assert assert_error_body(reply, 400)["location"] == location
    assert listing(api)["count"] == before


def _query(*expressions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"operation_device_query": {"matchExpressions": list(expressions), **fields}}


@pytest.mark.parametrize(
    "body",
    [
        _future(**_query({"key": "tier", "operator": "NotIn", "values": []})),
        _future(**_query({"key": "tier", "operator": "In"})),
        _future(**_query({"key": "tier", "operator": "Exists", "values": ["gold"]})),
        _future(**_query({"key": "tier", "operator": "In", "values": ["gold"]})),
        _future(**_query({"key": "tier", "operator": "DoesNotExist"})),
        _future(**_query(kinds=["Truck"])),
        _future(**_query(kinds=["Asset", "Task"])),
        _future(arguments={"timeout": "0s"}),
        _future(arguments={"timeout": "0.0h"}),
        _future(arguments={"timeout": "169h"}),
        _future(arguments={"timeout": "604801"}),
        _future(arguments={"timeout": "168h"}),
        _future(arguments={"timeout": "0.5 h"}),
        _future(arguments={"timeout": " 90s "}),
        _future(arguments={"timeout": 604800}),
        _future(arguments={"timeout": 0.001}),
        {"operation_type": "CONVERGE", "schedule_type": "IMMEDIATE", "schedule_args": window()},
        {"operation_type": "CONVERGE", "schedule_type": "WINDOW", "schedule_args": None},
    ],
)
def test_a_create_body_is_accepted_exactly_when_the_document_allows_it(
    api: DaemonProcess, body: dict[str, Any]
) -> None:
    """The served schema and the server agree: what it allows is created, what it does
    not is a 400, and no rule of the server is missing from the document."""
    doc = api.get("/openapi.json").json()
    schema = doc["paths"]["/v0/operations/"]["post"]["requestBody"]["content"]
    validator = jsonschema.Draft202012Validator(
        {**schema["application/json"]["schema"], "components": doc["components"]}
    )
    allowed = validator.is_valid(body)
    reply = send(api, "POST", "/v0/operations/", body)
    assert reply.status == (201 if allowed else 400), (allowed, reply.text)
    if allowed:
        assert put_state(api, reply.json()["content"]["operation_id"], "CANCELLED").status == 200


def test_an_unknown_field_gets_a_did_you_mean(api: DaemonProcess) -> None:
    reply = send(api, "POST", "/v0/operations/", _future(arguments={"timout": "1h"}))
    body = assert_error_body(reply, 400)
    assert "'timeout'" in body["resolution"], body


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b"", "body.state"),
        (b"{}", "body.state"),
        (b"null", "body"),
        ({"state": "DONE"}, "body.state"),
        ({"state": "cancelled"}, "body.state"),
        ({"state": 110}, "body.state"),
        ({"state": "SUCCESS"}, "body.state"),
        ({"state": "CANCELLED", "reason": 5}, "body.reason"),
        ({"state": "CANCELLED", "reason": "x" * 1001}, "body.reason"),
        ({"state": "CANCELLED", "why": "x"}, "body.why"),
    ],
)
def test_a_malformed_put_is_400_and_changes_nothing(
    api: DaemonProcess, body: Any, location: str
) -> None:
    op = scheduled(api)
    reply = send(api, "PUT", f"/v0/operations/{op['operation_id']}/", body)
    assert assert_error_body(reply, 400)["location"] == location
    assert api.operation(op["operation_id"]) == op
    assert put_state(api, op["operation_id"], "CANCELLED").status == 200


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b"[]", "body"),
        ({"by": 7}, "body.by"),
        ({"by": "x" * 201}, "body.by"),
        ({"comment": ["ok"]}, "body.comment"),
        ({"approver": "alice"}, "body.approver"),
    ],
)
def test_a_malformed_approval_is_400(api: DaemonProcess, body: Any, location: str) -> None:
    op = scheduled(api)
    reply = send(api, "POST", f"/v0/operations/{op['operation_id']}/approve", body)
    assert assert_error_body(reply, 400)["location"] == location
    assert put_state(api, op["operation_id"], "CANCELLED").status == 200


def test_an_oversized_body_is_413(api: DaemonProcess) -> None:
    body = json.dumps({"operation_type": "CONVERGE", "pad": "x" * 70_000}).encode()
    assert_error_body(send(api, "POST", "/v0/operations/", body), 413)


# -- suspension ------------------------------------------------------------------------------


def test_a_suspended_daemon_refuses_new_operations_with_409(api: DaemonProcess) -> None:
    assert api.state_dir is not None
    write_suspension(api.state_dir, Suspension("ops-oncall", "2030-01-01T00:00:00Z", "incident 42"))
    try:
        before = listing(api)["count"]
        body = assert_error_body(
            send(api, "POST", "/v0/operations/", {"operation_type": "CONVERGE"}), 409
        )
        assert "ops-oncall" in body["reason"], body
        assert listing(api)["count"] == before
    finally:
        clear_suspension(api.state_dir)
    assert create(api)["operation_type"] == "CONVERGE"


# -- without operations control --------------------------------------------------------------


@pytest.fixture
def without_control(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The API served (real uvicorn, real HTTP) with `control=None`; the runs it queued."""
    queued: list[str] = []
    log = OperationLog(tmp_path)

    def request_run(reason: str) -> Operation:
        op = Operation.new(reason, "2030-01-01T00:00:00Z")
        log.record(op)
        queued.append(reason)
        return op

    health = Health(ready_max_age=300)
    app = create_app(
        ApiContext(
            health=health,
            metrics=Metrics(health),
            operations=log,
            secrets=lambda: Secrets(api_token=TOKEN),
            request_run=request_run,
        )
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="uvicorn to start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", queued
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_without_control_a_plain_create_queues_a_run_and_the_rest_is_503(
    without_control: tuple[str, list[str]],
) -> None:
    url, queued = without_control
    plain = http("POST", url + "/v0/operations/", b'{"operation_type": "CONVERGE"}', AUTH)
    assert plain.status == 201 and plain.json()["content"]["trigger"] == "api"
    assert queued == ["api"]
    op_id = plain.json()["content"]["operation_id"]
    for method, path, body in [
        ("POST", "/v0/operations/", _future()),
        ("PUT", f"/v0/operations/{op_id}/", {"state": "CANCELLED"}),
        ("POST", f"/v0/operations/{op_id}/approve", {}),
    ]:
        reply = http(method, url + path, json.dumps(body).encode(), AUTH)
        assert "not available" in assert_error_body(reply, 503)["error"]
    # Still checked first: a bad body is 400, a missing token 401.
    assert_error_body(http("PUT", url + f"/v0/operations/{op_id}/", b"{}", AUTH), 400)
    assert_error_body(http("PUT", url + f"/v0/operations/{op_id}/", b"{}"), 401)
    assert queued == ["api"]
