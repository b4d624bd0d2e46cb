"""Benchmarks on real processes: POST-to-SHIPPED latency and burst throughput.

Starts the whole system with embedded defaults (like `make run`, on free
ports, in test-artifacts/bench-*), prints numbers, stops everything.
Targets are read from these numbers by people, not asserted: timing
assertions flake on a shared 2-core machine.

    make bench                       # defaults
    BENCH_LATENCY_ORDERS=50 BENCH_BURST_ORDERS=2000 make bench
    SHOPSITE_DB=postgres BENCH_BURST_ORDERS=0 make bench   # latency only, on PostgreSQL

The database follows SHOPSITE_DB like everything else. On PostgreSQL the
stack creates fresh databases of its own and drops them when it stops (so
runs do not drain each other's stock), and runs two worker processes unless
SHOPSITE_WORKERS says otherwise.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shopsite import config as settings_config  # noqa: E402
from shopsite.supervisor import Stack, StackConfig, config_from_env  # noqa: E402

ORDER = {"items": [{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-2", "qty": 1}], "total": 12.5}


def wait_shipped(client: httpx.Client, order_id: str, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/read/orders/{order_id}")
        if response.status_code == 200 and response.json()["currentStatus"] == "SHIPPED":
            return time.monotonic()
        time.sleep(0.005)
    raise TimeoutError(f"order {order_id} did not reach SHIPPED in {timeout}s")


def latency(client: httpx.Client, n: int) -> list[float]:
    """POST one order, wait until the read model shows it SHIPPED; n times, one after another."""
    samples = []
    for _ in range(n):
        started = time.monotonic()
        order_id = client.post("/api/orders", json=ORDER).json()["orderId"]
        samples.append(wait_shipped(client, order_id) - started)
    return samples


def burst(client: httpx.Client, n: int, threads: int = 8) -> tuple[float, float]:
    """POST n orders as fast as `threads` clients can; (POST rate, end-to-end rate) in orders/s."""
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        ids = list(pool.map(lambda _: client.post("/api/orders", json=ORDER).json()["orderId"], range(n)))
    posted = time.monotonic()
    deadline = posted + 300
    while time.monotonic() < deadline:
        if all_shipped(client, ids):
            break
        time.sleep(0.2)
    done = time.monotonic()
    return n / (posted - started), n / (done - started)


def all_shipped(client: httpx.Client, ids: list[str]) -> bool:
    for order_id in reversed(ids):  # the newest are the likeliest to be unfinished
        body = client.get(f"/api/read/orders/{order_id}")
        if body.status_code != 200 or body.json()["currentStatus"] != "SHIPPED":
            return False
    return True


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    switches = settings_config.load()
    n_latency, n_burst = switches.bench_latency_orders, switches.bench_burst_orders
    artifacts = ROOT / "test-artifacts" / f"bench-{int(time.time())}"
    env_config = config_from_env(base_dir=ROOT)
    config = StackConfig(base_dir=ROOT, var_dir=artifacts / "var", log_dir=artifacts / "logs", port=0,
                         kafka_bootstrap=env_config.kafka_bootstrap, force_embedded_redis=True,
                         worker_services=env_config.worker_services)
    with Stack(config) as stack:  # __enter__ starts it (a second start() found its own port taken)
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            latency(client, 3)  # warm-up: consumer groups joined, connections open
            if n_latency > 0:
                samples = latency(client, n_latency)
                print(f"POST -> SHIPPED visible in the read model, {n_latency} orders one at a time:")
                print(f"  median {statistics.median(samples) * 1000:.0f} ms"
                      f"   p95 {percentile(samples, 95) * 1000:.0f} ms"
                      f"   min {min(samples) * 1000:.0f} ms   max {max(samples) * 1000:.0f} ms")
            if n_burst > 0:  # BENCH_BURST_ORDERS=0 skips the burst
                post_rate, e2e_rate = burst(client, n_burst)
                print(f"burst of {n_burst} orders (8 HTTP clients):")
                print(f"  accepted {post_rate:.0f} orders/s   completed (all SHIPPED) {e2e_rate:.0f} orders/s")
            print(f"workers: {config.worker_services}; database: {switches.database_backend}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
