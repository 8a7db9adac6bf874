"""The web view's pages, in-process: what they show, what they escape, who may see them.

Real repositories, real state directories and the daemon's own reconciler; the
pages are served by Starlette's TestClient (no socket). The browser tests
(test_web_browser.py) drive the real daemon.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from web_support import MANUAL_POLICY, Site, fleet

from fleetward.model import ObjectKey, StoredObject, StoreSnapshot
from fleetward.web import COOKIE
from fleetward.web.graph import GraphRenderer
from fleetward.web.index import PAGE_SIZE, ObjectIndex
from fleetward.web.routes import cookie_value
from fleetward.web.sources import public_url

SCRIPT = "<script>alert('pwned')</script>"


@pytest.fixture(name="site")
def site_fixture(tmp_path: Path) -> Site:
    site = Site(tmp_path)
    site.run()
    return site


def text_of(page: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded, spaces collapsed)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


# -- the overview ------------------------------------------------------------------------------


def test_the_overview_shows_the_applied_revision_its_commit_and_counts(site: Site) -> None:
    page = site.page("/")
    text = text_of(page)
    assert "Ready" in text
    assert site.first[:7] in text
    assert "bundled manifests" in text  # the commit subject
    assert "Fleet Tester" in text  # its author
    assert "In sync" in text
    assert re.search(r'data-kind="Asset" data-state="active">15<', page)
    assert "Nothing held." in text
    assert "No manifest errors." in text
    assert site.store.operations.all()[-1].operation_id[:8] in text


def test_an_empty_daemon_says_so_instead_of_showing_empty_tables(tmp_path: Path) -> None:
    site = Site(tmp_path, bundled=False)
    text = text_of(site.page("/"))
    for empty in (
        "Nothing applied yet.",
        "The store holds no objects yet.",
        "Nothing held.",
        "No manifest errors.",
        "No operations yet.",
    ):
        assert empty in text
    assert "No operations yet." in text_of(site.page("/ui/operations"))
    assert "The store holds no objects yet." in text_of(site.page("/ui/objects"))
    assert "The store holds no workflows." in text_of(site.page("/ui/workflows"))


def test_a_change_held_for_approval_shows_what_it_would_change(tmp_path: Path) -> None:
    site = Site(tmp_path, {"manifests/policies/north.yaml": MANUAL_POLICY})
    report = site.run()
    assert report.decision is not None and report.decision.held
    carrier = report.decision.held[0].operation_id
    assert carrier is not None
    text = text_of(site.page("/"))
    assert "Nothing held." not in text
    assert "SyncPolicy north-by-hand" in text
    assert "approval" in text and "waiting for approval" in text
    assert "+ Asset/TRK-1001" in text
    assert "Fleet/north-yard (4)" in text
    held = text_of(site.page(f"/ui/operations/{carrier}"))
    assert "Held documents" in held and "+ Asset/TRK-1001" in held


def test_manifest_errors_show_their_file_line_and_column(site: Site) -> None:
    broken = (
        "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: broken\nspec:\n  assets: 7\n"
    )
    site.commit("a broken fleet", {"manifests/fleets/broken.yaml": broken})
    report = site.run()
    assert report.manifest_errors
    text = text_of(site.page("/"))
    assert "Not ready" in text
    assert re.search(r"manifests/fleets/broken\.yaml:6:\d+", text), text
    assert report.problems[0].error in text
    # The last good revision stays applied: the applied revision is still the first.
    applied = re.search(r"Applied\s+(\w{7})", text)
    assert applied is not None and applied.group(1) == site.first[:7]


# -- operations ------------------------------------------------------------------------------


def test_an_operation_shows_transitions_plan_and_the_objects_it_changed(site: Site) -> None:
    op = site.store.operations.all()[-1]
    page = site.page(f"/ui/operations/{op.operation_id}")
    text = text_of(page)
    for state in ("CREATED", "RESOLVING", "RESOLVED", "PROCESSING", "SUCCESS"):
        assert state in text
    assert 'class="t-create">  + Asset/TRK-1001' in page  # the plan, coloured per action
    assert 'href="/ui/objects/Asset/TRK-1001"' in page
    assert "No errors." in text


def test_operations_filter_by_state_and_trigger(site: Site) -> None:
    site.run()  # a second run: no changes
    assert text_of(site.page("/ui/operations")).count("SUCCESS") >= 2
    assert "No operations match these filters." in text_of(
        site.page("/ui/operations?state=FAILURE")
    )
    assert "2 matching" in text_of(site.page("/ui/operations?state=SUCCESS&trigger=poll"))
    assert "No operations match" in text_of(site.page("/ui/operations?trigger=webhook"))


def test_an_unknown_operation_or_object_is_a_404_page(site: Site) -> None:
    assert "No operation nope is kept" in text_of(site.page("/ui/operations/nope", 404))
    assert "No object Asset/NOPE in the store" in text_of(site.page("/ui/objects/Asset/NOPE", 404))
    assert "Nothing at /ui/elsewhere" in text_of(site.page("/ui/elsewhere", 404))


# -- objects ---------------------------------------------------------------------------------


def test_objects_are_paginated_and_searched_by_address_label_and_owner(tmp_path: Path) -> None:
    site = Site(tmp_path, {"manifests/fleets/big.yaml": fleet("big", 120)})
    site.run()
    first = text_of(site.page("/ui/objects?kind=Asset"))
    assert "1–50 of 135" in first
    assert "Page 1 of 3" in first
    last = site.page("/ui/objects?kind=Asset&page=3")
    assert "101–135 of 135" in text_of(last)
    assert last.count('href="/ui/objects/Asset/') == 35
    assert "101–120 of 120" in text_of(site.page("/ui/objects?q=big&page=3"))  # by owner
    assert "1–50 of 60 matching" in text_of(site.page("/ui/objects?q=class%3Dodd"))  # by label
    assert "1–4 of 4" in text_of(site.page("/ui/objects?q=region%3Dnorth+class"))  # owner's label
    # Terms match from their start: BIG-7 finds BIG-7 and BIG-70…79.
    assert "1–1 of 1 matching" in text_of(site.page("/ui/objects?q=Asset/BIG-119"))
    assert "1–11 of 11 matching" in text_of(site.page("/ui/objects?q=BIG-7"))
    assert "1–11 of 11 matching" in text_of(site.page("/ui/objects?q=asset/big-7"))
    assert "No objects match “zzz”." in text_of(site.page("/ui/objects?q=zzz"))


def test_one_object_shows_owner_file_conditions_history_spec_and_status(site: Site) -> None:
    text = text_of(site.page("/ui/objects/Asset/TRK-1001"))
    assert "Fleet/north-yard in manifests/fleets/north-yard.yaml" in text
    assert "Ready True Reconciled" in text
    assert "Created" in text and "serial 1" in text
    assert '"model": "FH16"' in text


class CountingObjects(Mapping[ObjectKey, StoredObject]):
    """A snapshot's objects that count the ones read: a page must read its own only."""

    def __init__(self, objects: Mapping[ObjectKey, StoredObject]) -> None:
        self._objects = objects
        self.reads = 0

    def __getitem__(self, key: ObjectKey) -> StoredObject:
        self.reads += 1
        return self._objects[key]

    def __iter__(self) -> Iterator[ObjectKey]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)


def test_a_page_of_objects_reads_only_its_own_objects(tmp_path: Path) -> None:
    site = Site(tmp_path, {"manifests/fleets/big.yaml": fleet("big", 400)})
    report = site.run()
    assert report.store is not None
    counting = CountingObjects(report.store.objects)
    index = ObjectIndex(StoreSnapshot(report.store.meta, counting))
    built = counting.reads
    for kind, query in ((None, ""), ("Asset", ""), ("Asset", "big"), (None, "class=odd")):
        counting.reads = 0
        page = index.page(kind, query, 2)
        assert len(page.objects) == PAGE_SIZE
        assert counting.reads == PAGE_SIZE, (kind, query)
    assert built == len(counting)  # the index read each object once, when it was built


# -- safety ----------------------------------------------------------------------------------


def test_a_script_in_a_manifest_value_is_shown_as_text(tmp_path: Path) -> None:
    site = Site(tmp_path, {"manifests/fleets/xss.yaml": fleet("xss", 1, prefix="X")})
    site.run()
    site.commit(
        "a hostile name",
        {"manifests/fleets/xss.yaml": fleet("xss", 1, prefix="X").replace("X 0", SCRIPT)},
    )
    report = site.run()
    assert report.succeeded
    for path in (
        "/ui/objects/Asset/X-0",
        f"/ui/operations/{report.operation.operation_id}",
        "/ui/objects?q=" + SCRIPT,
    ):
        page = site.page(path)
        assert "<script>alert" not in page, path
        assert SCRIPT in html.unescape(page), path


def test_credentials_in_urls_are_never_rendered(tmp_path: Path) -> None:
    secret_url = "https://deploy:s3cr3t-token@git.example.com/fleet.git?private_token=abc"
    assert public_url(secret_url) == "https://git.example.com/fleet.git"
    described = fleet("creds", 1, prefix="C").replace(
        "spec:\n", f"spec:\n  description: mirror of {secret_url}\n"
    )
    site = Site(tmp_path, {"manifests/fleets/creds.yaml": described}, source_url=secret_url)
    site.run()
    for path in ("/", "/ui/objects/Asset/C-0"):
        page = site.page(path)
        assert "s3cr3t" not in page and "deploy:" not in page, path


def test_a_url_in_a_manifest_value_is_shown_as_stored(tmp_path: Path) -> None:
    """Credentials are removed from what fleetward says (the source URL, errors), never
    from an object's spec: the page shows what the store holds."""
    stored = "https://reader:hunter2@assets.example.com/manual.pdf"
    files = {
        "manifests/fleets/docs.yaml": fleet("docs", 1, prefix="D").replace(
            "      type: truck\n", f"      type: truck\n      attributes: {{manual: '{stored}'}}\n"
        )
    }
    site = Site(tmp_path, files, bundled=False)
    site.run()
    assert stored in html.unescape(site.page("/ui/objects/Asset/D-0"))


def test_an_idle_poll_does_not_move_an_objects_since(site: Site) -> None:
    """`Since` is when the object last changed, not when a poll last found nothing to do."""
    idle = site.run()
    later = dataclasses.replace(
        idle, operation=dataclasses.replace(idle.operation, updated_at="2099-01-01T00:00:00Z")
    )
    site.live.run_finished(later)
    obj = site.store.read().objects[ObjectKey("Asset/TRK-1001")]
    page = site.page("/ui/objects/Asset/TRK-1001")
    since = re.findall(r'<td><time datetime="([^"]+)">', page)
    assert since and set(since) == {obj.updated_at}, since


def test_rendered_plans_are_kept_only_while_the_daemon_shows_them(tmp_path: Path) -> None:
    site = Site(tmp_path, plans_kept=1)
    first = site.run()
    site.page(f"/ui/operations/{first.operation.operation_id}")
    assert first.plan is not None and any(o is first.plan for o in site.sources.memos.owners())
    site.commit("a new asset", {"manifests/fleets/more.yaml": fleet("more", 1, prefix="M")})
    second = site.run()
    site.page(f"/ui/operations/{second.operation.operation_id}")
    site.page("/ui/objects/Asset/TRK-1001")
    owners = site.sources.memos.owners()
    assert any(o is second.plan for o in owners), owners
    assert not any(o is first.plan or o is first for o in owners), owners


def test_pages_change_nothing_and_forbid_scripts_frames_and_caching(site: Site) -> None:
    reply = site.client.get("/")
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in reply.text  # no inline script: the one script is a file
    assert '<script src="/ui/static/live.js" defer></script>' in reply.text
    assert "<form" not in reply.text or 'method="post"' not in reply.text.lower()
    assert site.client.post("/").status_code == 405
    assert site.client.post("/ui/objects").status_code == 405


def test_a_ui_token_guards_every_page_and_the_live_stream(tmp_path: Path) -> None:
    site = Site(tmp_path, token="open-sesame")
    site.run()
    asked = site.client.get("/")
    assert asked.status_code == 401
    assert 'name="token"' in asked.text and "open-sesame" not in asked.text
    assert site.client.get("/ui/objects").status_code == 401
    assert site.client.get("/ui/events").status_code == 401
    assert site.client.get("/ui/static/style.css").status_code == 200  # the 401 page's style
    assert site.client.get("/ui/objects?token=wrong").status_code == 403
    welcomed = site.client.get("/ui/objects?kind=Asset&token=open-sesame")
    assert welcomed.status_code == 303
    assert welcomed.headers["location"] == "/ui/objects?kind=Asset"  # the token leaves the URL
    cookie = welcomed.headers["set-cookie"]
    assert "open-sesame" not in cookie
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    site.client.cookies.set(COOKIE, cookie_value("open-sesame"))
    assert "1–15 of 15" in text_of(site.page("/ui/objects?kind=Asset"))
    site.token = "rotated"  # a new token (SIGHUP) ends the old cookies
    assert site.client.get("/").status_code == 401


# -- workflows -------------------------------------------------------------------------------


def test_a_workflow_graph_is_svg_when_graphviz_is_installed(site: Site) -> None:
    if not GraphRenderer().available:
        pytest.skip("Graphviz's dot is not installed")
    page = site.page("/ui/workflows/inspection-report")
    assert 'src="/ui/workflows/inspection-report.svg"' in page
    svg = site.client.get("/ui/workflows/inspection-report.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content and b"validate" in svg.content


def test_without_graphviz_a_workflow_is_shown_as_text(tmp_path: Path) -> None:
    site = Site(tmp_path, graphs=GraphRenderer(dot=""))
    site.run()
    text = text_of(site.page("/ui/workflows/inspection-report"))
    assert "is not installed" in text
    assert "validate" in text and "digraph" in text  # the steps, and the DOT source
    assert site.client.get("/ui/workflows/inspection-report.svg").status_code == 404


# -- live updates ----------------------------------------------------------------------------


def events(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The data of the next `count` `run` events of a stream."""
    found: list[dict[str, Any]] = []
    name = ""
    for line in lines:
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:") and name == "run":
            found.append(json.loads(line.partition(":")[2]))
            if len(found) == count:
                return found
    raise AssertionError(f"the stream ended after {found}")


def test_the_live_stream_announces_each_run_and_ends_when_the_daemon_stops(site: Site) -> None:
    with site.client.stream("GET", "/ui/events") as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        (now,) = events(lines, 1)
        assert now["version"] == site.live.version == 1
        waiting = threading.Event()

        def second_run() -> None:
            # Once the stream listens: poll for the subscription, never sleep.
            for _ in range(6000):
                if site.live.listeners:
                    break
                waiting.wait(0.01)
            site.run()

        runner = threading.Thread(target=second_run)
        runner.start()
        (after,) = events(lines, 1)
        runner.join()
        assert after["version"] == 2 and after["state"] == "SUCCESS"
        site.live.daemon_stopped("SIGTERM")
        assert [
            line for line in lines if line
        ] == []  # the stream ends: the HTTP server stops without waiting
    assert site.live.listeners == 0


def test_the_overview_refreshes_itself_with_and_without_javascript(site: Site) -> None:
    page = site.page("/")
    assert 'data-events="/ui/events"' in page
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in page
    assert "http-equiv" not in site.page("/ui/objects")  # a page being read stays put
