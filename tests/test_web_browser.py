"""The web view in a real browser: Debian's Chromium, driven by Playwright, against the daemon.

The daemon is `python -m fleetward daemon` over a real repository, serving HTTP
on 127.0.0.1; Chromium is the system's (no browser is downloaded), started with
the flags a closed network needs. Each page is saved as a screenshot under
tests/artifacts/web/ (or $FLEETWARD_TEST_ARTIFACTS). Skipped without Chromium.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import Daemons, Workspace, daemons_fixture, ws_fixture  # noqa: F401
from web_support import MANUAL_POLICY, fleet

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 60_000
SCRIPT = "<script>window.__pwned = 1</script>"
ARTIFACTS = Path(
    os.environ.get("FLEETWARD_TEST_ARTIFACTS")
    or Path(__file__).resolve().parent / "artifacts" / "web"
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (Debian's `chromium` package)"
)


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shot(page: sync_api.Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_overview_operation_and_object_pages_in_a_browser(
    ws: Workspace, daemons: Daemons, browser: sync_api.Browser
) -> None:
    repo, _ = ws.repo()
    hostile = fleet("hostile", 1, prefix="XSS").replace("XSS 0", SCRIPT)
    first = repo.commit(
        "north by hand, and a hostile name",
        {"manifests/policies/north.yaml": MANUAL_POLICY, "manifests/fleets/hostile.yaml": hostile},
    )
    daemon = daemons.start(repo.root, ws.path("state"))
    daemon.wait_applied(first, timeout=60)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(daemon.url + "/")
    expect = sync_api.expect
    expect(page.locator("#revision-applied")).to_contain_text(first[:7], timeout=WAIT_MS)
    expect(page.locator("#revision-applied")).to_contain_text("north by hand")
    expect(page.locator("#revision-applied")).to_contain_text("Fleet Tester")
    # 15 bundled assets + 1 hostile; north-yard's 4 wait for approval.
    assets = page.locator('td[data-kind="Asset"][data-state="active"]')
    expect(assets).to_have_text("12")
    held = page.locator("article.held")
    expect(held).to_contain_text("north-by-hand")
    expect(held).to_contain_text("approval")
    expect(held.locator(".t-create").first).to_contain_text("+ Asset/TRK-1001")
    assert page.get_by_role("heading", name="Held", exact=True).is_visible()
    shot(page, "overview")

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(daemon.url + "/")
    expect(phone.locator("h1")).to_have_text("Overview")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the overview is {width}px wide on a 390px phone"
    shot(phone, "overview-phone")
    phone.close()

    # overview → the operation that applied → an object it created
    page.locator("table").filter(has_text="Trigger").locator("tbody a").last.click()
    expect(page.locator("h1")).to_contain_text("Operation")
    expect(page.locator("pre.plan .t-create").first).to_be_visible()
    shot(page, "operation")
    page.get_by_role("link", name="Asset/XSS-0").click()
    expect(page.locator("h1")).to_have_text("Asset/XSS-0")
    expect(page.locator("pre.json")).to_contain_text(SCRIPT)  # shown as text
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []
    expect(page.locator("#h-conditions")).to_be_visible()
    shot(page, "object")

    page.goto(daemon.url + "/ui/objects?kind=Asset&q=south-yard")
    expect(page.locator("caption")).to_contain_text("of 4 matching")
    shot(page, "objects")
    page.goto(daemon.url + "/ui/operations")
    expect(page.locator("caption")).to_contain_text("matching")
    shot(page, "operations")
    page.goto(daemon.url + "/ui/workflows/inspection-report")
    expect(page.locator("h1")).to_have_text("Workflow inspection-report")
    shot(page, "workflow")
    page.close()


def test_the_overview_follows_new_commits_without_a_reload(
    ws: Workspace, daemons: Daemons, browser: sync_api.Browser
) -> None:
    repo, first = ws.repo()
    daemon = daemons.start(repo.root, ws.path("state"))
    daemon.wait_applied(first, timeout=60)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(daemon.url + "/")
    expect = sync_api.expect
    expect(page.locator("#revision-applied")).to_contain_text(first[:7], timeout=WAIT_MS)
    page.evaluate("window.__same_page = true")  # gone if the page were loaded again

    broken = (
        "apiVersion: fleetward/v1\nkind: Fleet\nmetadata:\n  name: broken\nspec:\n  assets: 7\n"
    )
    repo.commit("a broken fleet", {"manifests/fleets/broken.yaml": broken})
    errors = page.locator("#h-errors + p + ul.problems")
    expect(errors).to_contain_text("manifests/fleets/broken.yaml:6:", timeout=WAIT_MS)
    expect(page.locator("#h-ready")).to_have_text("Not ready")
    shot(page, "overview-manifest-error")

    fixed = repo.commit("drop the broken fleet", {"manifests/fleets/broken.yaml": fleet("ok", 3)})
    expect(page.locator("#revision-applied")).to_contain_text(fixed[:7], timeout=WAIT_MS)
    expect(page.locator("#revision-applied")).to_contain_text("drop the broken fleet")
    expect(page.locator('td[data-kind="Asset"][data-state="active"]')).to_have_text("18")
    expect(page.locator("#h-errors ~ p.empty")).to_have_text("No manifest errors.")
    assert page.evaluate("window.__same_page === true"), "the page was reloaded"
    expect(page.locator("#live-status")).to_contain_text("Updated")
    page.close()


def test_the_overview_works_with_javascript_off(
    ws: Workspace, daemons: Daemons, browser: sync_api.Browser
) -> None:
    repo, first = ws.repo()
    daemon = daemons.start(repo.root, ws.path("state"), "--ui-token", "s3cret")
    daemon.wait_applied(first, timeout=60)
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 800}
    )
    page = context.new_page()
    page.goto(daemon.url + "/")
    expect = sync_api.expect
    expect(page.locator("h1")).to_have_text("Token required")
    page.get_by_label("Token").fill("s3cret")
    page.get_by_role("button", name="Open").click()
    expect(page.locator("#revision-applied")).to_contain_text(first[:7], timeout=WAIT_MS)
    assert "token" not in page.url  # the token leaves the address bar at once
    refresh = page.locator('noscript meta[http-equiv="refresh"]')
    assert refresh.count() == 1 or re.search(r'http-equiv="refresh"', page.content())
    shot(page, "overview-no-javascript")
    context.close()
