"""The console in headless Chromium (SPEC 13): one `subledger serve` (SQLite) and one browser
for the whole module. Sign-in and sign-out, wrong and public keys refused, another app's
customer not reachable by URL, search by keyboard, a timeline with the document as of an
entry, the charts page's pickers, a re-send, a phone-width page, and no console error on
any page. Screenshots of each page go to test-artifacts/console/. The same routes run on
both stores over plain HTTP in tests/integration/test_console.py."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.deliveries import DeliveryReader
from projections.reader import Reader
from subledger.settings import parse_database_url
from tests.conftest import REPO, unavailable
from tests.e2e.conftest import Server, start_server, stop_server
from tests.harness import AppKeys, Harness, served_harness
from tests.integration.test_console import bought

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the dev extra has it; without it the tests skip loudly (fail in CI)
    expect = sync_playwright = None

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


class World:
    def __init__(self, server: Server, h: Harness, mine: AppKeys, theirs: AppKeys) -> None:
        self.server, self.h, self.mine, self.theirs = server, h, mine, theirs
        self.errors: list[str] = []


def failed_deliveries(database_url: str, app_id: str) -> int:
    reader = Reader(parse_database_url(database_url))
    try:
        found = DeliveryReader(reader).deliveries(app_id, status="failed", limit=0)
    finally:
        reader.close()
    return len(found)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two apps; the first with a customer whose deliveries all failed (a closed port)."""
    tmp = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{tmp / 'subledger.db'}"
    server = start_server(url, tmp, SUBLEDGER_DELIVERY_RETRIES_S="0.1")
    try:
        with served_harness(server.url, url) as h:
            mine, theirs = h.app(), h.app()
            h.ledger.add_integration(mine.app_id, "http://127.0.0.1:9/hook")
            time.sleep(0.6)  # the server's app registry refreshes every 0.5 s
            bought(h, mine)
            deadline = time.monotonic() + 20
            while failed_deliveries(url, mine.app_id) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            yield World(server, h, mine, theirs)
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable("CONSOLE BROWSER TESTS", f"{CHROMIUM} is missing (tests/sdk/install all)")
    if sync_playwright is None:
        unavailable("CONSOLE BROWSER TESTS", "the playwright package is missing (dev extra)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    """A fresh context (no cookies) whose console errors and page errors are collected."""
    world.errors.clear()
    context = browser.new_context(
        base_url=world.server.url, viewport={"width": 1280, "height": 900}
    )
    opened = context.new_page()
    opened.on(
        "console", lambda m: m.type == "error" and world.errors.append(f"{opened.url}: {m.text}")
    )
    opened.on("pageerror", lambda e: world.errors.append(f"{opened.url}: {e}"))
    yield opened
    context.close()
    assert world.errors == []


def expected_refusals(world: World, status: int) -> None:
    """Chromium logs each refused page (a 401 sign-in, a 404) as a failed load: a test that
    asked for those takes them off the list; any other console error still fails it."""
    marker = f"status of {status} "
    assert any(marker in error for error in world.errors), world.errors
    world.errors[:] = [error for error in world.errors if marker not in error]


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page: Any, key: str) -> None:
    page.goto("/console/")
    assert page.url.endswith("/console/sign-in")
    page.fill("#key", key)
    page.click("button[type=submit]")


def test_wrong_and_public_keys_are_refused_and_the_secret_key_signs_in_and_out(
    page: Any, world: World
) -> None:
    sign_in(page, world.mine.public_key)
    assert "public key cannot sign in" in page.inner_text("[role=alert]")
    sign_in(page, "sk_wrong")
    assert "unknown key" in page.inner_text("[role=alert]")
    shot(page, "sign-in-refused")
    expected_refusals(world, 401)
    sign_in(page, world.mine.secret_key)
    assert page.url.endswith("/console/")
    assert world.mine.app_id in page.inner_text("header")
    assert world.mine.secret_key not in page.content()
    page.click("text=Sign out")
    assert page.url.endswith("/console/sign-in")
    page.goto("/console/deliveries")
    assert page.url.endswith("/console/sign-in")


def test_search_by_keyboard_then_the_timeline_and_the_document_as_of_an_entry(
    page: Any, world: World
) -> None:
    sign_in(page, world.mine.secret_key)
    expect(page.locator("#q")).to_be_focused()  # autofocus: typing goes to the search box
    page.keyboard.type("cus_Test0001")  # the search box has the focus
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/?q=cus_Test0001")
    shot(page, "search")
    page.click("a[href='/console/customers/user_1']")
    history = world.h.history(world.mine, "user_1")
    assert page.locator("li.entry").count() == len(history)
    shot(page, "customer")
    updated = ".kind:text-is('stripe:customer.subscription.updated')"
    cancel = page.locator(f"li.entry:has({updated})").get_attribute("id")
    assert cancel
    page.click(f"#{cancel} a.asof")
    aside = page.locator("aside")
    assert f"As of #{cancel[1:]}" in aside.inner_text()
    assert page.locator("pre.diff span.added").count() >= 1
    assert page.locator("pre.diff span.removed").count() >= 1
    added = page.locator("pre.diff span.added").all_inner_texts()
    assert any("unsubscribe_detected_at" in text for text in added)
    shot(page, "customer-as-of")
    page.click("a[href='/console/purchases/sub_Test0001']")
    assert "winner" in page.locator("tr.winner").inner_text()
    shot(page, "purchase")


def test_a_phone_width_page_does_not_scroll_sideways(page: Any, world: World) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    sign_in(page, world.mine.secret_key)
    for path in ("/console/customers/user_1", "/console/purchases/sub_Test0001"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
    page.goto("/console/customers/user_1")
    shot(page, "customer-phone")


def test_charts_pickers_and_deliveries_resend(page: Any, world: World) -> None:
    sign_in(page, world.mine.secret_key)
    page.goto("/console/charts")
    page.select_option("select[name=resolution]", "week")
    page.click("text=Show")
    assert "resolution=week" in page.url
    assert page.locator("select[name=resolution]").input_value() == "week"
    shot(page, "charts")
    page.goto("/console/deliveries?status=failed")
    assert page.locator("li.delivery.failed").count() == 2
    shot(page, "deliveries")
    before = world.h.ledger.last_position()
    page.locator("li.delivery.failed button").first.click()
    assert "recorded at position" in page.inner_text("[role=status]")
    assert world.h.ledger.last_position() > before
    shot(page, "deliveries-resent")


def test_a_chart_bar_drills_down_to_its_purchase_and_facts(page: Any, world: World) -> None:
    sign_in(page, world.mine.secret_key)
    page.goto("/console/charts?name=active_subscriptions&resolution=day")
    page.locator("ol.bars a").last.click()
    drill = page.locator("#drill")
    assert "What " in drill.inner_text()
    drill.locator("a[href='/console/purchases/sub_Test0001']").click()
    assert "Snapshots in merge order" in page.inner_text("main")
    page.go_back()
    shot(page, "chart-drill-down")


def test_another_apps_customer_is_not_reachable_by_url(page: Any, world: World) -> None:
    sign_in(page, world.theirs.secret_key)
    answer = page.goto("/console/customers/user_1")
    assert answer.status == 404
    assert "no customer" in page.inner_text("[role=alert]")
    assert page.goto("/console/purchases/sub_Test0001").status == 404
    shot(page, "other-app-404")
    expected_refusals(world, 404)


def test_the_readme_screenshot_of_the_timeline(page: Any, world: World) -> None:
    """docs/console-timeline.png is this page (refreshed when CONSOLE_README_SHOT=1)."""
    sign_in(page, world.mine.secret_key)
    page.goto("/console/customers/user_1")
    updated = ".kind:text-is('stripe:customer.subscription.updated')"
    page.locator(f"li.entry:has({updated}) a.asof").click()
    page.set_viewport_size({"width": 1280, "height": 1240})
    page.evaluate("window.scrollTo(0, 0)")
    taken = shot(page, "readme-timeline", full_page=False)
    if os.environ.get("CONSOLE_README_SHOT") == "1":
        shutil.copy(taken, REPO / "docs" / "console-timeline.png")
