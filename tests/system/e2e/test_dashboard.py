"""The operations dashboard in a real browser (Debian's Chromium driven by Playwright),
and the live SSE streams read while they are still open."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.system.e2e.conftest import ROOT, SAGA_TIMEOUT, System, manage, wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
OPERATOR = ("e2e-browser-operator", "correct horse battery staple")
VIEWER = ("e2e-browser-viewer", "a viewer's long passphrase")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # The machine's network is closed: without these Chromium keeps dialling out.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is not installed: `make test` installs it (apt-get install chromium)"
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def operator(stack) -> tuple[str, str]:
    done = manage(stack, "create_operator", OPERATOR[0], "--password", OPERATOR[1])
    assert done.returncode == 0, done.stderr
    return OPERATOR


@pytest.fixture(scope="module")
def viewer(stack) -> tuple[str, str]:
    done = manage(stack, "create_operator", VIEWER[0], "--read-only", "--password", VIEWER[1])
    assert done.returncode == 0, done.stderr
    return VIEWER


@pytest.fixture
def page(browser: Browser, system: System) -> Iterator[Page]:
    context = browser.new_context(base_url=system.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # hx-confirm: the operator says yes
    try:
        yield tab
    finally:
        context.close()


def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, operator: tuple[str, str]) -> None:
    page.goto("/accounts/login/?next=/")
    page.fill("input[name=username]", operator[0])
    page.fill("input[name=password]", operator[1])
    page.click("button[type=submit]")
    expect(page.locator("header .who")).to_contain_text(operator[0])


def create_order_in_form(page: Page, lines: list[tuple[str, int]], total: str) -> str:
    page.goto("/orders/new")
    for n, (sku, qty) in enumerate(lines, start=1):
        page.select_option(f"select[aria-label='SKU line {n}']", sku)
        page.fill(f"input[aria-label='quantity line {n}']", str(qty))
    page.fill("input[name=total]", total)
    page.click("button:has-text('Create order')")
    page.wait_for_url("**/orders/*-*")
    return page.url.rsplit("/", 1)[-1]


def timeline_row(page: Page, event_type: str):
    return page.locator(f"#timeline tr[data-type='{event_type}']")


def set_shipping_outage(page: Page, outage: bool) -> None:
    page.goto("/controls")
    box = page.locator("input[name=outage]")
    box.check() if outage else box.uncheck()
    page.click("button:has-text('Save shipping settings')")
    expect(page.locator(".messages")).to_contain_text("Shipping simulator updated")


def test_visitors_sign_in_first_and_viewers_cannot_press_anything(page: Page, system: System, viewer):
    order_id = system.place_order([{"sku": "SKU-2", "qty": 1}], 5)["orderId"]
    system.wait_shipped(order_id)
    for path in ("/", f"/orders/{order_id}", "/dlq", "/controls"):
        page.goto(path)
        expect(page.locator("input[name=username]")).to_be_visible()  # the login page, nothing else
        assert "/accounts/login/" in page.url, page.url
    # Pressing anyway (a crafted POST with a valid CSRF token) leads to the login page and changes nothing.
    before = len(system.projection(order_id).json()["timeline"])
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    answer = page.request.post(f"/orders/{order_id}/compensate/refundPayment",
                               form={"csrfmiddlewaretoken": token}, max_redirects=0)
    assert answer.status == 302 and "/accounts/login/" in answer.headers["location"]

    log_in(page, viewer)
    expect(page.locator(f"#order-{order_id}")).to_be_visible()
    page.goto(f"/orders/{order_id}")
    buttons = page.locator("#order-panel button")
    expect(buttons).to_have_count(5)
    for n in range(5):
        expect(buttons.nth(n)).to_be_disabled()
    expect(page.locator("#order-panel")).to_contain_text("Read-only")
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    answer = page.request.post(f"/orders/{order_id}/compensate/refundPayment",
                               form={"csrfmiddlewaretoken": token}, max_redirects=0)
    assert answer.status == 403
    assert page.goto("/orders/new").status == 403
    assert page.goto("/dlq").status == 403
    time.sleep(1)
    assert len(system.projection(order_id).json()["timeline"]) == before


def test_an_order_created_in_the_form_reaches_shipped_live(page: Page, system: System, operator):
    log_in(page, operator)
    order_id = create_order_in_form(page, [("SKU-1", 2), ("SKU-6", 1)], "31.50")
    # No reload from here on: entries and the status arrive over the live stream.
    expect(timeline_row(page, "shipping.OrderShipped.v1")).to_be_visible(timeout=SAGA_TIMEOUT * 1000)
    expect(page.locator("#order-status")).to_have_text("SHIPPED")
    expect(page.locator("#timeline tr")).to_have_count(4)
    expect(timeline_row(page, "payment.PaymentAuthorized.v1")).to_contain_text("amount=31.5")
    shot(page, "order-shipped")
    page.goto("/")
    expect(page.locator(f"#order-{order_id}")).to_contain_text("SHIPPED")
    shot(page, "order-list")


def test_shipping_outage_then_refund_live(page: Page, system: System, operator):
    log_in(page, operator)
    set_shipping_outage(page, True)
    try:
        order_id = create_order_in_form(page, [("SKU-7", 1)], "12.25")
        expect(page.locator("#order-status")).to_have_text("SHIPPING_FAILED", timeout=SAGA_TIMEOUT * 1000)
        refund = page.locator("button[data-action=refundPayment]")
        expect(refund).to_be_enabled()
        expect(page.locator("button[data-action=shipping]")).to_be_enabled()
        expect(page.locator("button[data-action=payment]")).to_be_disabled()
        refund.click()
        expect(page.locator("#action-result")).to_contain_text("CompensationRequested")
        expect(page.locator("#order-status")).to_have_text("REFUNDED", timeout=30_000)
        expect(timeline_row(page, "payment.PaymentRefunded.v1")).to_contain_text("amount=12.25")
        expect(page.locator("button[data-action=refundPayment]")).to_be_disabled()
        shot(page, "order-refunded")
    finally:
        set_shipping_outage(page, False)
    assert system.payment(order_id)["refundedAmount"] == 12.25


def test_dead_letter_page_shows_reason_and_replay(page: Page, system: System, operator):
    system.produce([("order.OrderCreated.v1", b"browser-test-key", b"{definitely not json", None)])
    wait_for(lambda: any("definitely not json" in json.dumps(d["payload"])
                         for d in system.ops_get("/api/ops/dlq").json()["results"]), what="the dead letter")
    log_in(page, operator)
    page.goto("/dlq")
    row = page.locator("tr.dead-letter", has_text="definitely not json").first
    expect(row).to_contain_text("not JSON")
    expect(row).to_contain_text("order.OrderCreated.v1")
    expect(row.locator("button:has-text('Replay')").first).to_be_enabled()
    shot(page, "dead-letters")
    row.locator("button:has-text('Replay')").first.click()  # the original can't be replayed as is
    expect(page.locator(".messages")).to_contain_text("replay refused")


# --- the JSON stream (GET /api/read/orders/{id}/stream) ------------------------------

def sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """Parse SSE lines into events; comments (heartbeats) come out as {"comment": ...}."""
    event: dict = {}
    for line in lines:
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif not line:
            if event:
                yield event
            event = {}
        else:
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


def test_stream_sends_the_first_event_while_still_open_and_resumes_without_duplicates(system: System):
    order_id = system.place_order([{"sku": "SKU-2", "qty": 1}], 7)["orderId"]
    system.wait_shipped(order_id)
    with system.http.stream("GET", f"/api/read/orders/{order_id}/stream", timeout=20) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
        first = next(e for e in events if e.get("event") == "entry")
        assert not response.is_closed  # read while the stream is still open: not buffered
    # Entries stream in arrival order (seq); events of one order can arrive in any order across topics.
    by_seq = {str(e["seq"]): e["type"] for e in system.projection(order_id).json()["timeline"]}
    assert sorted(by_seq) == ["1", "2", "3", "4"]
    assert (first["id"], json.loads(first["data"])["type"]) == ("1", by_seq["1"])
    with system.http.stream("GET", f"/api/read/orders/{order_id}/stream", headers={"Last-Event-ID": "2"},
                            timeout=20) as response:
        seen, heartbeat = [], False
        for event in sse_events(response.iter_lines()):
            if "comment" in event:
                heartbeat = event["comment"] == "heartbeat"
                if len(seen) >= 2:
                    break
            elif event.get("event") == "entry":
                seen.append((event["id"], json.loads(event["data"])["type"]))
    assert seen == [("3", by_seq["3"]), ("4", by_seq["4"])]  # exactly what was missed, no duplicates
    assert heartbeat


def test_stream_delivers_new_entries_as_they_happen(system: System):
    system.http.put("/api/ops/simulators/shipping", json={"outage": True, "failureRate": 0},
                    headers=system.ops_headers).raise_for_status()
    try:
        order_id = system.place_order([{"sku": "SKU-2", "qty": 1}], 9)["orderId"]
        wait_for(lambda: system.projection(order_id).json()["currentStatus"] == "SHIPPING_FAILED",
                 timeout=SAGA_TIMEOUT, what="SHIPPING_FAILED")
    finally:
        system.http.put("/api/ops/simulators/shipping", json={"outage": False, "failureRate": 0},
                        headers=system.ops_headers).raise_for_status()
    with system.http.stream("GET", f"/api/read/orders/{order_id}/stream", headers={"Last-Event-ID": "4"},
                            timeout=30) as response:
        system.http.post(f"/api/ops/orders/{order_id}/retry", json={"step": "shipping"},
                         headers=system.ops_headers).raise_for_status()
        types = []
        for event in sse_events(response.iter_lines()):
            if event.get("event") == "entry":
                types.append(json.loads(event["data"])["type"])
                if len(types) == 2:
                    break
    # The request and its outcome, each once (they travel on different topics: either may arrive first).
    assert sorted(types) == ["ops.RetryRequested.v1", "shipping.OrderShipped.v1"]
