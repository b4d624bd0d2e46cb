"""Make docs/dashboard.png: a few minutes of real traffic on real processes, seen by the browser.

    .venv/bin/python -m tests.system.e2e.readme_screenshot [minutes]

Not a test (nothing to assert that test_dashboard_charts.py does not): the
README's picture needs minutes of history, which a test should not spend.
Starts the same stack as the e2e tests, keeps the dashboard open in
Chromium (its live refresh is what samples lag and backlog), places orders
in waves of varying size with some failures and refunds, then photographs
the top of the list page.
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import sync_playwright

from shopsite.supervisor import Stack, StackConfig
from tests.system.e2e.conftest import ROOT, System, manage
from tests.system.e2e.test_dashboard import CHROMIUM_FLAGS, OPERATOR, chromium_path, log_in

OUTPUT = ROOT / "docs" / "dashboard.png"


def wave(system: System, size: int, rng: random.Random) -> None:
    def one(n: int) -> None:
        if rng.random() < 0.1:  # more than the stock holds: InventoryFailed
            system.place_order([{"sku": "SKU-9", "qty": 10_000}], 5)
        else:
            system.place_order([{"sku": f"SKU-{1 + n % 8}", "qty": 1 + n % 3}], 10 + n % 40)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(size)))


def refund_failed_shipments(system: System) -> None:
    listing = system.http.get("/api/read/orders", params={"status": "SHIPPING_FAILED", "limit": 50}).json()
    for doc in listing.get("results", []):
        system.http.post(f"/api/ops/orders/{doc['orderId']}/compensate", json={"action": "refundPayment"},
                         headers=system.ops_headers)


def main(minutes: float) -> None:
    artifacts = ROOT / "test-artifacts" / f"readme-{time.strftime('%Y%m%d-%H%M%S')}"
    stack = Stack(StackConfig(base_dir=ROOT, var_dir=artifacts / "var", port=0, kafka_bootstrap=None,
                              force_embedded_redis=True, log_dir=artifacts / "logs"))
    try:
        stack.start(timeout=120)
        assert manage(stack, "create_operator", *OPERATOR[:1], "--password", OPERATOR[1]).returncode == 0
        token = [line for line in manage(stack, "issue_ops_token", "readme").stdout.splitlines()
                 if line.strip() and not line.startswith("{")][-1].strip()
        system = System(stack, token)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            page = browser.new_context(base_url=system.url, viewport={"width": 1280, "height": 900}).new_page()
            log_in(page, OPERATOR)
            page.goto("/?minutes=15")
            rng = random.Random(12)
            system.http.put("/api/ops/simulators/shipping", json={"outage": False, "failureRate": 0.05},
                            headers=system.ops_headers)
            deadline = time.monotonic() + minutes * 60
            while time.monotonic() < deadline:
                wave(system, rng.choice([5, 10, 20, 40, 120]), rng)
                refund_failed_shipments(system)
                time.sleep(rng.uniform(4, 12))
            system.http.put("/api/ops/simulators/shipping", json={"outage": False, "failureRate": 0},
                            headers=system.ops_headers)
            time.sleep(12)  # the last orders finish; one more sample of lag and backlog
            page.reload()
            box = page.locator("#charts").bounding_box()
            assert box, "no charts on the page"
            OUTPUT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT), clip={"x": 0, "y": 0, "width": 1280, "height": box["y"] + box["height"] + 12})
            browser.close()
        system.close()
        print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size // 1024} KiB)")
    finally:
        stack.stop()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 4)
