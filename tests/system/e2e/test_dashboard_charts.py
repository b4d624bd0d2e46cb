"""The dashboard's charts in a real browser, drawn from orders placed on the running system.

Screenshots go to test-artifacts/screenshots/ (charts-*.png).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.system.e2e.conftest import SAGA_TIMEOUT, System, wait_for
from tests.system.e2e.test_dashboard import SCREENSHOTS, browser, log_in, operator, page, shot  # noqa: F401 - shared fixtures

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

SHIPPED_ORDERS = 8
FAILED_ORDERS = 3


def element_shot(element: Locator, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    element.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def total_of(page: Page, chart: str, outcome: str) -> int:
    """Orders of one outcome over the window, read from the chart's bar tooltips."""
    titles = page.locator(f"#{chart} rect.bar title").all_text_contents()
    return sum(int(t.rsplit(": ", 1)[1]) for t in titles if f" {outcome}: " in t)


def place_and_finish(system: System) -> list[str]:
    shipped = [system.place_order([{"sku": f"SKU-{1 + n % 5}", "qty": 1}], 10 + n)["orderId"]
               for n in range(SHIPPED_ORDERS)]
    # More than the seeded stock (1,000 a SKU): the inventory service answers InventoryFailed.
    failed = [system.place_order([{"sku": "SKU-9", "qty": 10_000}], 5)["orderId"] for _ in range(FAILED_ORDERS)]
    for order_id in shipped:
        system.wait_shipped(order_id)
    for order_id in failed:
        wait_for(lambda o=order_id: system.projection(o).json().get("currentStatus") == "INVENTORY_FAILED",
                 SAGA_TIMEOUT, what=f"{order_id} to fail its reservation")
    return shipped


def test_list_page_charts_show_real_orders_and_update_live(page: Page, system: System, operator):  # noqa: F811
    log_in(page, operator)
    shipped = place_and_finish(system)
    page.goto("/?minutes=15")
    charts = page.locator("#charts")
    expect(charts.locator("svg.chart")).to_have_count(4)
    assert total_of(page, "chart-throughput", "shipped") >= SHIPPED_ORDERS
    assert total_of(page, "chart-throughput", "failed") >= FAILED_ORDERS
    # p50 and p95 of POST -> SHIPPED: a point each for the minute(s) the orders were placed in
    expect(page.locator("#chart-latency circle").first).to_be_visible()
    assert re.search(r"p50 last \d", page.locator("#chart-latency desc").text_content())
    # lag and backlog per service: the metrics sampled at least once, a series per service
    for chart in ("chart-lag", "chart-backlog"):
        expect(page.locator(f"#{chart} polyline")).to_have_count(5)

    # Live: one more order appears in the chart without a reload (htmx swaps the fragment in).
    before = total_of(page, "chart-throughput", "shipped")
    system.wait_shipped(system.place_order([{"sku": "SKU-2", "qty": 1}], 7)["orderId"])
    wait_for(lambda: total_of(page, "chart-throughput", "shipped") > before, SAGA_TIMEOUT,
             what="the throughput chart to count the new order without a reload")
    shot(page, "charts-list-page")
    element_shot(charts, "charts-panel")

    page.goto(f"/orders/{shipped[0]}")
    saga = page.locator("figure.saga svg")
    expect(saga.locator("g.step")).to_have_count(4)
    assert saga.locator("g.step").evaluate_all("steps => steps.map(s => s.dataset.type)") == [
        "OrderCreated", "InventoryReserved", "PaymentAuthorized", "OrderShipped"]
    gaps = saga.locator("text.gap").all_text_contents()
    assert len(gaps) == 3 and all(re.fullmatch(r"\+[\d.]+ (ms|s|min)", g) for g in gaps), gaps
    shot(page, "charts-order-page")
    element_shot(page.locator("figure.saga"), "charts-saga")


def test_charts_show_without_javascript(browser: Browser, system: System, operator):  # noqa: F811
    context = browser.new_context(base_url=system.url, java_script_enabled=False,
                                  viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        log_in(tab, operator)
        tab.goto("/charts?minutes=15")
        expect(tab.locator("svg.chart")).to_have_count(4)
        tab.click("a[data-minutes='60']")  # a plain link: the window changes without JavaScript
        expect(tab.locator("a.active[data-minutes='60']")).to_be_visible()
        expect(tab.locator("svg.chart title").first).to_contain_text("last 60 min")
        shot(tab, "charts-no-javascript")
    finally:
        context.close()
