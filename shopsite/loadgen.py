"""Load generation against a running system (`manage.py loadgen`).

HTTP mode: C concurrent keep-alive connections POST /api/orders, as fast as
they can or at a fixed rate. --direct: orders are placed in bulk through the
order service's own code (orders.commands.place_orders), no HTTP: the event
pipeline alone.

Finding SHIPPED cheaply: the read model stamps each projection with
updatedAt when it applies an event, so the moment an order became SHIPPED is
read from the projection itself, not from when we happened to look. Polling
can then be lazy without skewing latencies:
- HTTP: GET /api/read/orders?status=SHIPPED&limit=200 pages, newest first,
  only down to the oldest order still unshipped (a cursor walk of about
  "newly shipped / 200" requests per look, a look every 250 ms);
- direct: one query on the read model for SHIPPED rows updated since the
  last look (minus a margin for commits that land late).
POST->SHIPPED latency = updatedAt(SHIPPED) - the moment the POST was sent
(same machine, same clock).

The HTTP client is a few lines of asyncio over raw HTTP/1.1 keep-alive, not
a full client library: on a 2-core machine the load generator's own CPU per
request would otherwise be a visible part of what it measures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO
from urllib.parse import urlsplit

SKUS = [f"SKU-{n}" for n in range(1, 11)]
TERMINAL_FAILURES = {"INVENTORY_FAILED", "PAYMENT_FAILED", "SHIPPING_FAILED", "REFUNDED"}
LOOK_SECONDS = 0.25
PAGE = 200


def order_body(n: int) -> dict[str, Any]:
    return {"items": [{"sku": SKUS[n % len(SKUS)], "qty": 1}], "total": 10}


@dataclass
class Report:
    orders: int
    accepted: int = 0
    failures: list[str] = field(default_factory=list)
    first_post: float = 0.0  # wall clock
    last_accept: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)  # orderId -> wall clock of its POST
    shipped_at: dict[str, float] = field(default_factory=dict)  # orderId -> read model's updatedAt
    other_terminal: dict[str, str] = field(default_factory=dict)

    @property
    def latencies(self) -> list[float]:
        return sorted(self.shipped_at[o] - self.sent_at[o] for o in self.shipped_at if o in self.sent_at)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies
        post_s = max(self.last_accept - self.first_post, 1e-9)
        ship_s = max((max(self.shipped_at.values()) if self.shipped_at else self.first_post) - self.first_post, 1e-9)
        return {
            "orders": self.orders,
            "accepted": self.accepted,
            "shipped": len(self.shipped_at),
            "failures": len(self.failures) + len(self.other_terminal),
            "accepted_per_s": round(self.accepted / post_s, 1),
            "shipped_per_s": round(len(self.shipped_at) / ship_s, 1),
            "p50_ms": _pct_ms(lat, 50),
            "p95_ms": _pct_ms(lat, 95),
            "p99_ms": _pct_ms(lat, 99),
            "max_ms": round(lat[-1] * 1000, 1) if lat else None,
            "first_failures": self.failures[:5] + [f"{o}: {s}" for o, s in list(self.other_terminal.items())[:5]],
        }


def _pct_ms(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000, 1)


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Connection:
    """One HTTP/1.1 keep-alive connection (Content-Length or chunked answers)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self.base_headers = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\n{self.base_headers}"
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            self.writer.write(head.encode() + b"\r\n" + body)
            return await self._response()
        except BaseException:
            self.close()
            raise

    async def _response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed by the server")
        status = int(status_line.split()[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            parts = []
            while (size := int((await self.reader.readline()).split(b";")[0], 16)) > 0:
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            await self.reader.readline()
            body = b"".join(parts)
        else:
            body = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Progress:
    def __init__(self, report: Report, out: TextIO):
        self.report, self.out = report, out
        self.started = time.monotonic()
        self.last = (self.started, 0, 0)

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        t0, accepted0, shipped0 = self.last
        accepted, shipped = self.report.accepted, len(self.report.shipped_at)
        dt = max(now - t0, 1e-9)
        self.out.write(f"\r[{now - self.started:6.1f}s] accepted {accepted:>7} ({(accepted - accepted0) / dt:6.0f}/s)"
                       f"  shipped {shipped:>7} ({(shipped - shipped0) / dt:6.0f}/s)"
                       f"  failures {len(self.report.failures) + len(self.report.other_terminal)}   ")
        if final:
            self.out.write("\n")
        self.out.flush()
        self.last = (now, accepted, shipped)


async def _progress_every_second(progress: Progress, done: asyncio.Event) -> None:
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), 1.0)
        except asyncio.TimeoutError:
            progress.tick()


async def run_http(base: str, token: str | None, orders: int, concurrency: int, rate: float | None,
                   timeout: float = 300.0, out: TextIO = sys.stderr) -> Report:
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    report = Report(orders)
    progress = Progress(report, out)
    posting_done, all_done = asyncio.Event(), asyncio.Event()
    counter = iter(range(orders))
    start = time.monotonic()
    report.first_post = time.time()

    async def client() -> None:
        conn = Connection(host, port, headers)
        try:
            for n in counter:
                if rate:
                    delay = start + n / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                body = json.dumps(order_body(n)).encode()
                sent = time.time()
                try:
                    status, answer = await conn.request("POST", "/api/orders", body)
                except (OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
                    report.failures.append(f"POST: {exc!r}")
                    continue
                if status != 201:
                    report.failures.append(f"POST {status}: {answer[:200]!r}")
                    continue
                report.sent_at[json.loads(answer)["orderId"]] = sent
                report.accepted += 1
                report.last_accept = time.time()
        finally:
            conn.close()

    ticker = asyncio.create_task(_progress_every_second(progress, all_done))
    watcher = asyncio.create_task(_watch_http(host, port, headers, report, posting_done, timeout))
    await asyncio.gather(*(client() for _ in range(concurrency)))
    posting_done.set()
    await watcher
    all_done.set()
    await ticker
    progress.tick(final=True)
    return report


async def _watch_http(host: str, port: int, headers: dict[str, str], report: Report,
                      posting_done: asyncio.Event, timeout: float) -> None:
    """Walk SHIPPED pages newest first, down to the oldest order not seen shipped yet."""
    conn = Connection(host, port, headers)
    idle_deadline = None
    try:
        while True:
            pending = [o for o in report.sent_at if o not in report.shipped_at and o not in report.other_terminal]
            if posting_done.is_set() and not pending:
                return
            if pending:
                oldest = min(report.sent_at[o] for o in pending) - 2.0  # createdAt is a server stamp: a margin
                before = len(report.shipped_at)
                await _walk_shipped(conn, report, oldest)
                if len(report.shipped_at) > before:
                    idle_deadline = None
            if posting_done.is_set():
                idle_deadline = idle_deadline or time.monotonic() + timeout
                if time.monotonic() > idle_deadline:
                    await _classify(conn, report, pending)
                    return
            await asyncio.sleep(LOOK_SECONDS)
    finally:
        conn.close()


async def _walk_shipped(conn: Connection, report: Report, oldest: float) -> None:
    cursor = None
    while True:
        path = f"/api/read/orders?status=SHIPPED&limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        try:
            status, body = await conn.request("GET", path)
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            return
        if status != 200:
            return
        page = json.loads(body)
        for doc in page["results"]:
            if doc["orderId"] in report.sent_at and doc["orderId"] not in report.shipped_at:
                report.shipped_at[doc["orderId"]] = _wall(doc["updatedAt"])
        cursor = page.get("next")
        if not cursor or not page["results"] or _wall(page["results"][-1]["createdAt"]) < oldest:
            return


async def _classify(conn: Connection, report: Report, pending: list[str]) -> None:
    """After the time-out: what became of the orders never seen SHIPPED (one GET each, only for these)."""
    for order_id in pending:
        try:
            status, body = await conn.request("GET", f"/api/read/orders/{order_id}")
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            report.other_terminal[order_id] = "unreachable"
            continue
        report.other_terminal[order_id] = json.loads(body).get("currentStatus", "?") if status == 200 else str(status)


def ensure_stock(base: str, token: str | None, orders: int) -> None:
    """Top up every SKU the generator uses so stock never runs out (needs an operator token)."""
    import httpx

    need = orders // len(SKUS) + 1
    with httpx.Client(base_url=base, timeout=30,
                      headers={"Authorization": f"Bearer {token}"} if token else {}) as http:
        stock = http.get("/api/ops/inventory")
        if stock.status_code != 200:
            sys.stderr.write(f"cannot read stock ({stock.status_code}); not restocking\n")
            return
        body = stock.json()
        rows = body.get("results", body) if isinstance(body, dict) else body
        available = {r["sku"]: r["available"] for r in rows} if isinstance(rows, list) else {}
        for sku in SKUS:
            if available.get(sku, 0) < need:
                http.put(f"/api/ops/inventory/{sku}", json={"available": need + available.get(sku, 0)})


def run_direct(orders: int, rate: float | None, chunk: int = 500, timeout: float = 300.0,
               out: TextIO = sys.stderr) -> Report:
    """Place orders in bulk through the order service's code; watch the read model's database."""
    from orders.commands import place_orders

    report = Report(orders)
    progress = Progress(report, out)
    watcher = _DirectWatch(report)
    start = time.monotonic()
    report.first_post = time.time()
    last_tick = start
    placed = 0
    while placed < orders:
        n = min(chunk, orders - placed)
        if rate:
            delay = start + placed / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sent = time.time()
        for order in place_orders([(order_body(placed + i)["items"], 10) for i in range(n)]):
            report.sent_at[order.order_id] = sent
        placed += n
        report.accepted = placed
        report.last_accept = time.time()
        if time.monotonic() - last_tick >= 1.0:
            watcher.look()
            progress.tick()
            last_tick = time.monotonic()
    deadline = time.monotonic() + timeout
    while len(report.shipped_at) < report.accepted and time.monotonic() < deadline:
        time.sleep(LOOK_SECONDS)
        before = len(report.shipped_at)
        watcher.look()
        if len(report.shipped_at) > before:
            deadline = time.monotonic() + timeout
        if time.monotonic() - last_tick >= 1.0:
            progress.tick()
            last_tick = time.monotonic()
    for order_id in set(report.sent_at) - set(report.shipped_at):
        report.other_terminal[order_id] = "not SHIPPED before the time-out"
    progress.tick(final=True)
    return report


class _DirectWatch:
    MARGIN_SECONDS = 2.0  # a batch stamped earlier may commit a little later

    def __init__(self, report: Report):
        from readmodel.models import OrderProjection
        from shopsite.services import BY_NAME

        self.rows = OrderProjection.objects.using(BY_NAME["readmodel"].alias)
        self.report = report
        self.since = datetime.fromtimestamp(report.first_post - self.MARGIN_SECONDS, timezone.utc)

    def look(self) -> None:
        newest = self.since
        for order_id, updated in (self.rows.filter(current_status="SHIPPED", updated_at__gte=self.since)
                                  .values_list("order_id", "updated_at")):
            if order_id in self.report.sent_at and order_id not in self.report.shipped_at:
                self.report.shipped_at[order_id] = updated.timestamp()
            newest = max(newest, updated)
        self.since = max(self.since, newest - _seconds(self.MARGIN_SECONDS))


def _seconds(s: float):  # noqa: ANN202
    from datetime import timedelta

    return timedelta(seconds=s)


def render(summary: dict[str, Any], write: Callable[[str], Any]) -> None:
    write(f"orders {summary['orders']}: accepted {summary['accepted']} ({summary['accepted_per_s']}/s), "
          f"SHIPPED {summary['shipped']} ({summary['shipped_per_s']} orders/s), failures {summary['failures']}")
    write(f"POST->SHIPPED p50 {summary['p50_ms']} ms  p95 {summary['p95_ms']} ms  p99 {summary['p99_ms']} ms"
          f"  max {summary['max_ms']} ms")
    for failure in summary["first_failures"]:
        write(f"  failure: {failure}")
    write("LOADGEN " + json.dumps(summary))
