"""The daemon's HTTP API over real HTTP: operations, auth, webhook gates, health, OpenAPI.

One daemon serves the read-only tests of this module. Its state directory was
first written by two `--once` runs (one SUCCESS, one FAILURE on a typo), so
the operation log holds both states before the daemon adds its own runs.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    NORTH,
    DaemonProcess,
    Daemons,
    Reply,
    Workspace,
    assert_error_body,
    daemons_fixture,
    sign,
    wait_until,
    ws_fixture,
)
from daemon_support import http as request
from support import isolated_env

from fleetward.http.app import ApiContext, Secrets, create_app
from fleetward.http.webhooks import SeenDeliveries, read_delivery
from fleetward.observe.health import Health
from fleetward.observe.metrics import Metrics
from fleetward.operations import Operation
from fleetward.store.operations import OperationLog

TOKEN = "token-of-the-api"
SECRET = "secret-of-the-webhook"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("api")
    home = root / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    env = {k: v for k, v in isolated_env(home).items() if not k.lower().endswith("_proxy")}
    workspace = Workspace(root, env)
    repo, _ = workspace.repo()
    state = workspace.path("state")

    def once() -> int:
        args = ["daemon", "--once", "--source", str(repo.root), "--state-dir", str(state)]
        return workspace.fleetward(*args).returncode

    assert once() == 0
    repo.replace(NORTH, "      type: truck", "      tpye: truck")
    repo.commit("typo")
    assert once() == 1
    repo.replace(NORTH, "      tpye: truck", "      type: truck")
    fixed = repo.commit("fix")

    started = Daemons(workspace)
    try:
        daemon = started.start(repo.root, state, api_token=TOKEN, webhook_secret=SECRET)
        daemon.wait_applied(fixed)
        for _ in range(2):  # two more runs, one after the other
            reply = daemon.request_run(TOKEN)
            assert reply.status == 201, reply.text
            daemon.wait_operation(reply.json()["content"]["operation_id"])
        yield daemon
    finally:
        started.kill_all()


def listing(daemon: DaemonProcess, query: str = "") -> dict[str, Any]:
    reply = daemon.get("/v0/operations/" + (f"?{query}" if query else ""))
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    content: dict[str, Any] = reply.json()["content"]
    assert set(content) == {"count", "limit", "offset", "results"}
    return content


def ids(results: list[dict[str, Any]]) -> list[str]:
    return [op["operation_id"] for op in results]


# -- listing ------------------------------------------------------------------------------------


def test_the_list_is_newest_first_and_pages_cover_every_operation(api: DaemonProcess) -> None:
    everything = listing(api, "limit=1000")
    total = everything["count"]
    assert total >= 5 and len(everything["results"]) == total
    assert everything["results"][0]["trigger"] == "api"  # the newest run
    assert everything["results"][-1]["trigger"] == "once"  # the first --once run

    default = listing(api)
    assert (default["limit"], default["offset"]) == (50, 0)
    assert ids(default["results"]) == ids(everything["results"])

    paged: list[str] = []
    for offset in range(0, total, 2):
        page = listing(api, f"limit=2&offset={offset}")
        assert (page["count"], page["limit"], page["offset"]) == (total, 2, offset)
        assert len(page["results"]) == min(2, total - offset)
        paged += ids(page["results"])
    assert paged == ids(everything["results"])

    past_the_end = listing(api, f"offset={total}")
    assert past_the_end["count"] == total and past_the_end["results"] == []
    assert listing(api, "limit=0")["results"] == []


def test_ordering_by_creation_and_by_state(api: DaemonProcess) -> None:
    newest_first = ids(listing(api, "limit=1000")["results"])
    oldest_first = ids(listing(api, "limit=1000&ordering=created_at")["results"])
    assert oldest_first == list(reversed(newest_first))
    assert ids(listing(api, "limit=1000&ordering=-created_at")["results"]) == newest_first

    by_state = [op["state_code"] for op in listing(api, "ordering=state")["results"]]
    assert by_state == sorted(by_state) and by_state[-1] == 90
    by_state_desc = [op["state_code"] for op in listing(api, "ordering=-state")["results"]]
    assert by_state_desc == sorted(by_state_desc, reverse=True) and by_state_desc[0] == 90

    by_update = listing(api, "limit=1000&ordering=updated_at")["results"]
    stamps = [op["updated_at"] for op in by_update]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("state", ["90", "FAILURE", "failure", "OPERATION_FAILURE"])
def test_the_state_filter_takes_a_code_or_a_name(api: DaemonProcess, state: str) -> None:
    failed = listing(api, f"state={state}")
    assert failed["count"] == 1
    (op,) = failed["results"]
    assert (op["state"], op["state_code"], op["trigger"]) == ("FAILURE", 90, "once")
    assert op["error_count"] >= 1 and op["errors"][0]["location"].startswith(NORTH)


def test_the_state_filter_counts_only_matching_operations(api: DaemonProcess) -> None:
    succeeded = listing(api, "state=80&limit=1")
    assert succeeded["count"] == listing(api)["count"] - 1
    assert [op["state"] for op in succeeded["results"]] == ["SUCCESS"]
    assert listing(api, "state=CANCELLED") == {"count": 0, "limit": 50, "offset": 0, "results": []}


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("limit=abc", "query.limit"),
        ("limit=-1", "query.limit"),
        ("limit=100000", "query.limit"),
        ("offset=-5", "query.offset"),
        ("offset=1.5", "query.offset"),
        ("state=DONE", "query.state"),
        ("state=999", "query.state"),
        ("ordering=name", "query.ordering"),
        ("ordering=--state", "query.ordering"),
        ("page=2", "query.page"),
    ],
)
def test_bad_query_parameters_are_400_with_an_error_body(
    api: DaemonProcess, query: str, location: str
) -> None:
    body = assert_error_body(api.get(f"/v0/operations/?{query}"), 400)
    assert body["location"] == location


def test_one_operation_by_id_and_404_for_an_unknown_one(api: DaemonProcess) -> None:
    newest = listing(api, "limit=1")["results"][0]
    reply = api.get(f"/v0/operations/{newest['operation_id']}/")
    assert reply.status == 200
    assert reply.json() == {"content": newest}
    assert newest["transitions"][0]["state"] == "CREATED"
    assert newest["operation_type"] == "CONVERGE" and newest["schedule_type"] == "IMMEDIATE"

    unknown = "00000000-0000-4000-8000-000000000000"
    body = assert_error_body(api.get(f"/v0/operations/{unknown}/"), 404)
    assert body["parameters"] == {"operationId": unknown}


# -- changing state: the bearer token -------------------------------------------------------------


def test_requesting_a_run_needs_the_bearer_token(api: DaemonProcess) -> None:
    before = listing(api)["count"]
    body = json.dumps({"operation_type": "CONVERGE"}).encode()

    missing = api.post("/v0/operations/", body, {"Content-Type": "application/json"})
    assert_error_body(missing, 401)
    assert missing.headers.get("www-authenticate") == "Bearer"
    assert_error_body(api.post("/v0/operations/", body, {"Authorization": f"Basic {TOKEN}"}), 401)
    assert_error_body(api.post("/v0/operations/", body, {"Authorization": "Bearer wrong"}), 403)
    assert listing(api)["count"] == before  # none of those queued a run

    created = api.request_run(TOKEN)
    assert created.status == 201, created.text
    op = created.json()["content"]
    assert op["operation_type"] == "CONVERGE" and op["trigger"] == "api"
    done = api.wait_operation(op["operation_id"])
    assert done["state"] == "SUCCESS", done
    assert [t["state"] for t in done["transitions"]][-1] == "SUCCESS"
    assert listing(api)["count"] == before + 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        json.dumps({"operation_type": "DELETE"}).encode(),
        json.dumps({"operation_type": "CONVERGE", "colour": "red"}).encode(),
        json.dumps({"operation_type": "CONVERGE", "schedule_type": "WINDOW"}).encode(),
        json.dumps(
            {"operation_type": "CONVERGE", "operation_device_query": {"kind": "Asset"}}
        ).encode(),
    ],
)
def test_a_malformed_run_request_is_400_and_queues_nothing(api: DaemonProcess, body: bytes) -> None:
    before = listing(api)["count"]
    reply = api.post("/v0/operations/", body, {"Authorization": f"Bearer {TOKEN}"})
    assert_error_body(reply, 400)
    assert listing(api)["count"] == before


def test_a_burst_of_webhooks_coalesces_and_every_operation_ends(api: DaemonProcess) -> None:
    before = listing(api)["count"]
    body = b'{"ref": "refs/heads/main"}'
    headers = {"X-Hub-Signature-256": sign(SECRET, body), "X-GitHub-Event": "push"}
    replies = [api.post("/v0/webhook", body, headers) for _ in range(8)]
    assert {r.status for r in replies} == {202}
    returned = {r.json()["content"]["operation_id"] for r in replies}
    for op_id in returned:
        assert api.wait_operation(op_id)["state"] == "SUCCESS"
    after = listing(api, "limit=1000")
    # Every request joined a recorded operation; never more runs than requests.
    assert after["count"] - before == len(returned) <= len(replies)
    assert returned <= set(ids(after["results"]))


def test_a_ping_event_is_acknowledged_without_a_run(api: DaemonProcess) -> None:
    before = listing(api)["count"]
    body = b'{"zen": "Keep it logically awesome."}'
    reply = api.post(
        "/v0/webhook",
        body,
        {"X-Hub-Signature-256": sign(SECRET, body), "X-GitHub-Event": "ping"},
    )
    assert reply.status == 200, reply.text
    assert reply.json()["content"]["accepted"] is False
    assert listing(api)["count"] == before


def _signed(body: dict[str, Any], **headers: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    signed = {"X-Hub-Signature-256": sign(SECRET, raw), "Content-Type": "application/json"}
    return raw, {**signed, **headers}


MAIN_REPO = {"default_branch": "main"}


@pytest.mark.parametrize(
    ("event", "body", "why"),
    [
        ({"X-GitHub-Event": "push"}, {"ref": "refs/heads/feature", "repository": MAIN_REPO},
         "push to refs/heads/feature: the daemon tracks HEAD, the default branch main"),
        ({"X-GitHub-Event": "push"}, {"ref": "refs/tags/v1.0", "repository": MAIN_REPO},
         "push to refs/tags/v1.0: a tag push moves no branch"),
        ({"X-Gitea-Event": "push"}, {"ref": "refs/heads/dev", "repository": MAIN_REPO},
         "push to refs/heads/dev: the daemon tracks HEAD, the default branch main"),
        ({"X-Gitlab-Event": "Push Hook"}, {"ref": "refs/heads/dev", "project": MAIN_REPO},
         "push to refs/heads/dev: the daemon tracks HEAD, the default branch main"),
        ({"X-Gitlab-Event": "Tag Push Hook"}, {"ref": "refs/tags/v2"},
         "Tag Push Hook event: a tag push moves no branch"),
        ({"X-GitHub-Event": "issues"}, {"action": "opened"},
         "issues event: only pushes trigger a run"),
        ({"X-GitHub-Event": "pull_request"}, {"ref": "refs/heads/main"},
         "pull_request event: only pushes trigger a run"),
    ],
)  # fmt: skip
def test_a_delivery_that_moves_no_tracked_ref_is_acknowledged_without_a_run(
    api: DaemonProcess, event: dict[str, str], body: dict[str, Any], why: str
) -> None:
    before = listing(api)["count"]
    raw, headers = _signed(body, **event)
    reply = api.post("/v0/webhook", raw, headers)
    assert reply.status == 200, reply.text
    content = reply.json()["content"]
    assert (content["accepted"], content["ignored"], content["operation_id"]) == (False, why, None)
    assert listing(api)["count"] == before


def test_a_push_to_the_default_branch_runs(api: DaemonProcess) -> None:
    raw, headers = _signed(
        {"ref": "refs/heads/main", "repository": MAIN_REPO}, **{"X-GitHub-Event": "push"}
    )
    reply = api.post("/v0/webhook", raw, headers)
    assert reply.status == 202, reply.text
    assert api.wait_operation(reply.json()["content"]["operation_id"])["state"] == "SUCCESS"


@pytest.mark.parametrize(
    "server",
    [
        {"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
        {"X-Gitea-Event": "push", "X-Gitea-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473"},
        {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8"},
    ],
)
def test_a_redelivery_is_acknowledged_without_a_second_run(
    api: DaemonProcess, server: dict[str, str]
) -> None:
    before = listing(api)["count"]
    raw, headers = _signed({"ref": "refs/heads/main"}, **server)
    first = api.post("/v0/webhook", raw, headers)
    assert first.status == 202, first.text
    op_id = first.json()["content"]["operation_id"]
    api.wait_operation(op_id)

    again = api.post("/v0/webhook", raw, headers)
    assert again.status == 200, again.text
    content = again.json()["content"]
    assert content["accepted"] is False
    assert content["operation_id"] == op_id  # the run the first delivery started
    assert content["ignored"].endswith("was received before")
    assert listing(api)["count"] == before + 1


def test_an_unsigned_delivery_does_not_claim_its_delivery_id(api: DaemonProcess) -> None:
    """A forged request with a real delivery id must not make the real one a redelivery."""
    raw, headers = _signed({"ref": "refs/heads/main"}, **{"X-GitHub-Delivery": "d-unsigned"})
    forged = {**headers, "X-Hub-Signature-256": sign("not-the-secret", raw)}
    assert api.post("/v0/webhook", raw, forged).status == 401
    real = api.post("/v0/webhook", raw, headers)
    assert real.status == 202, real.text
    api.wait_operation(real.json()["content"]["operation_id"])


def test_an_oversized_webhook_body_is_413_and_runs_nothing(api: DaemonProcess) -> None:
    """Refused on its Content-Length, before the body is read (or signature checked)."""
    before = listing(api)["count"]
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", "/v0/webhook")
        conn.putheader("Content-Length", str(5 * 1024 * 1024 + 1))
        conn.putheader("X-Hub-Signature-256", "sha256=" + "0" * 64)
        conn.endheaders()  # and no body: the daemon must not wait for it
        response = conn.getresponse()
        reply = Reply(response.status, dict(response.headers), response.read())
    finally:
        conn.close()
    assert_error_body(reply, 413)
    assert listing(api)["count"] == before


def test_without_secrets_the_webhook_and_run_requests_are_disabled(
    ws: Workspace, daemons: Daemons
) -> None:
    repo, first = ws.repo()
    daemon = daemons.start(repo.root, ws.path("state"))  # no token, no webhook secret
    daemon.wait_applied(first)
    before = daemon.operations()

    body = b'{"ref": "refs/heads/main"}'
    disabled = daemon.post("/v0/webhook", body, {"X-Hub-Signature-256": sign("anything", body)})
    assert "disabled" in assert_error_body(disabled, 403)["error"]
    for headers in ({}, {"Authorization": "Bearer anything"}):
        reply = daemon.post("/v0/operations/", b'{"operation_type": "CONVERGE"}', headers)
        assert "disabled" in assert_error_body(reply, 403)["error"]
    assert daemon.operations() == before


# -- health, metrics, OpenAPI ---------------------------------------------------------------------


def test_healthz_readyz_and_metrics_answer(api: DaemonProcess) -> None:
    health = api.get("/healthz")
    assert health.status == 200 and health.json()["status"] == "ok"
    ready = api.get("/readyz")
    assert ready.status == 200, ready.text
    assert ready.json()["ready"] is True and ready.json()["reasons"] == []
    metrics = api.get("/metrics")
    assert metrics.status == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "fleetward_build_info" in metrics.text


def test_readyz_is_503_until_a_reconcile_succeeds(ws: Workspace, daemons: Daemons) -> None:
    repo, _ = ws.repo()
    repo.replace(NORTH, "      type: truck", "      tpye: truck")
    bad = repo.commit("typo from the start")
    daemon = daemons.start(repo.root, ws.path("state"))
    daemon.wait_summary(
        lambda s: s["source"]["revisionSeen"] == bad and s["lastOperation"]["state"] == "FAILURE",
        what="the first run to fail",
    )
    ready = daemon.get("/readyz")
    assert ready.status == 503
    reasons = ready.json()["reasons"]
    assert "no reconcile has succeeded yet" in reasons
    assert any("manifest error" in r for r in reasons), reasons
    assert daemon.get("/healthz").status == 200

    repo.replace(NORTH, "      tpye: truck", "      type: truck")
    fixed = repo.commit("fix")
    daemon.wait_applied(fixed)
    assert daemon.get("/readyz").status == 200


def test_the_openapi_document_describes_the_api(api: DaemonProcess) -> None:
    reply = api.get("/openapi.json")
    assert reply.status == 200
    doc = reply.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    paths = doc["paths"]
    for path in (
        "/v0/operations/",
        "/v0/operations/{operationId}/",
        "/v0/webhook",
        "/metrics",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    assert {"get", "post"} <= set(paths["/v0/operations/"])
    assert paths["/v0/operations/"]["post"]["security"] == [{"bearer": []}]

    # Every $ref resolves inside the document.
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(doc))
    assert found
    for ref in found:
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def raw(
    daemon: DaemonProcess, method: str, path: str, headers: dict[str, str] | None = None
) -> Reply:
    """One request as sent, no redirect followed (urllib follows a 307 on its own)."""
    host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, dict(response.headers), response.read())
    finally:
        conn.close()


def test_unknown_paths_and_methods_are_refused_with_the_error_body(api: DaemonProcess) -> None:
    # `/` is the web view now (tests/test_web_pages.py); any other unknown path is refused.
    for path in ("/v0/nothing", "/nothing", "/v0/operations/x/y/z"):
        body = assert_error_body(raw(api, "GET", path), 404)
        assert body["parameters"]["path"] == path
        assert "/openapi.json" in body["resolution"]
    refused = (("POST", "/metrics"), ("GET", "/v0/webhook"), ("DELETE", "/v0/operations/"))
    for method, path in refused:
        reply = raw(api, method, path)
        assert reply.headers["content-type"].startswith("application/json"), reply.headers
        body = assert_error_body(reply, 405)
        assert body["parameters"]["method"] == method
        # The Allow header stays, and the body names the same methods.
        allowed = {m.strip() for m in reply.headers["allow"].split(",")}
        assert set(body["parameters"]["allowed"]) == allowed and allowed


def test_operation_paths_answer_without_their_trailing_slash(api: DaemonProcess) -> None:
    """No 307 to the slashed path: curl does not follow it, and a POST would be lost."""
    listed = raw(api, "GET", "/v0/operations")
    assert listed.status == 200, (listed.status, listed.headers)
    assert listed.json() == raw(api, "GET", "/v0/operations/").json()
    newest = listed.json()["content"]["results"][0]["operation_id"]
    one = raw(api, "GET", f"/v0/operations/{newest}")
    assert one.status == 200 and one.json()["content"]["operation_id"] == newest
    # Without the token, the handler itself refuses: the request reached it.
    assert_error_body(raw(api, "POST", "/v0/operations"), 401)
    assert_error_body(raw(api, "POST", f"/v0/operations/{newest}/approve/"), 401)
    assert_error_body(raw(api, "POST", "/v0/webhook/"), 401)


# -- reading a delivery (the rules, without a daemon) ---------------------------------------------

SHA = "caa603f0c2b1d7a8e9f00112233445566778899a"


@pytest.mark.parametrize(
    ("tracked", "ref", "runs"),
    [
        ("main", "refs/heads/main", True),
        ("main", "refs/heads/feature", False),
        ("main", "refs/tags/main", True),  # a tag of that name is what --ref main names too
        ("refs/heads/main", "refs/heads/main", True),
        ("origin/main", "refs/heads/main", True),  # a local clone's remote-tracking branch
        ("v1.0", "refs/tags/v1.0", True),
        ("v1.0", "refs/tags/v1.1", False),
        (SHA, "refs/heads/main", False),  # a pinned commit: no push moves it
        ("HEAD", "refs/heads/anything", True),  # no default branch in the body: cannot tell
        ("HEAD", "refs/tags/v1.0", False),
        # ancestry steps: a push to the branch moves the commit they lead to
        ("main~1", "refs/heads/main", True),
        ("main^2", "refs/heads/main", True),
        ("main~1", "refs/heads/feature", False),
        ("origin/main~3", "refs/heads/main", True),
        ("HEAD~1", "refs/heads/anything", True),
        ("HEAD^{commit}", "refs/tags/v1.0", False),
        ("v1^{commit}", "refs/tags/v1", True),
        ("v1^{commit}", "refs/tags/v2", False),
        (SHA + "~1", "refs/heads/main", False),
        # an abbreviated SHA is a pinned commit too, unless a ref of that name is pushed
        (SHA[:7], "refs/heads/main", False),
        (SHA[:12] + "^", "refs/heads/main", False),
        (SHA[:39], "refs/heads/main", False),
        ("20240101", "refs/tags/20240101", True),  # git prefers the ref to the SHA
    ],
)
def test_only_a_push_to_the_tracked_ref_asks_for_a_run(tracked: str, ref: str, runs: bool) -> None:
    delivery = read_delivery({"x-github-event": "push"}, json.dumps({"ref": ref}).encode(), tracked)
    assert (delivery.ignored is None) is runs, delivery


@pytest.mark.parametrize(
    ("tracked", "why"),
    [
        (SHA[:7], "the daemon tracks commit caa603f, which no push moves"),
        (SHA + "~1", "the daemon tracks commit caa603f0c2b1~1, which no push moves"),
        ("main~1", "the daemon tracks main~1"),
        ("HEAD~1", "the daemon tracks HEAD~1, from HEAD, the default branch main"),
    ],
)
def test_an_ignored_push_names_what_the_daemon_tracks(tracked: str, why: str) -> None:
    body = json.dumps({"ref": "refs/heads/dev", "repository": MAIN_REPO}).encode()
    delivery = read_delivery({"x-github-event": "push"}, body, tracked)
    assert delivery.ignored == f"push to refs/heads/dev: {why}"


def test_a_form_encoded_payload_is_read_like_json() -> None:
    body = "payload=" + urllib.parse.quote(json.dumps({"ref": "refs/heads/feature"}))
    delivery = read_delivery({"x-github-event": "push"}, body.encode(), "main")
    assert delivery.ignored == "push to refs/heads/feature: the daemon tracks main"


def test_a_request_naming_no_event_and_no_ref_still_runs() -> None:
    delivery = read_delivery({"x-gitlab-token": SECRET}, b"{}", "main")
    assert (delivery.event, delivery.ignored, delivery.delivery_id) == ("push", None, None)


def test_a_delivery_whose_run_request_failed_runs_when_redelivered(tmp_path: Path) -> None:
    """The first request for a run raised (a full disk, say): the delivery id was kept as
    answered, so every redelivery was "received before" and never ran."""
    log = OperationLog(tmp_path)
    requests: list[str] = []

    def request_run(reason: str) -> Operation:
        requests.append(reason)
        if len(requests) == 1:
            raise OSError(28, "No space left on device")
        op = Operation.new(reason, "2030-01-01T00:00:00Z")
        log.record(op)
        return op

    health = Health(ready_max_age=300)
    app = create_app(
        ApiContext(
            health=health,
            metrics=Metrics(health),
            operations=log,
            secrets=lambda: Secrets(webhook_secret=SECRET),
            request_run=request_run,
            tracked_ref=lambda: "main",
        )
    )
    raw, headers = _signed({"ref": "refs/heads/main"}, **{"X-GitHub-Delivery": "d-failed"})
    with _serving(app) as url:
        failed = request("POST", url + "/v0/webhook", raw, headers)
        assert_error_body(failed, 500)  # a Git server redelivers on 5xx
        again = request("POST", url + "/v0/webhook", raw, headers)
        assert again.status == 202, again.text
        content = again.json()["content"]
        assert content["accepted"] is True and content.get("ignored") is None, content
        third = request("POST", url + "/v0/webhook", raw, headers)
    assert third.status == 200 and third.json()["content"]["ignored"].endswith("received before")
    assert third.json()["content"]["operation_id"] == content["operation_id"]
    assert requests == ["webhook", "webhook"]


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """`app` served by uvicorn in a thread on a free loopback port: its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="uvicorn to start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_the_seen_deliveries_are_bounded_and_forget_the_oldest() -> None:
    seen = SeenDeliveries(limit=3)
    for n in range(4):
        assert seen.claim(f"d{n}") is None
    assert seen.claim("d0") is None  # evicted: a new claim
    assert seen.claim("d3") == {}
