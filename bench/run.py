"""`make bench`: the whole system on real processes, driven by `manage.py loadgen`; prints one table.

Starts the system with embedded defaults (like `make run`, on free ports, in
test-artifacts/bench-*), measures, stops everything. Targets are read from
these numbers by people, not asserted: timing assertions flake on a shared
2-core machine.

Rows:
- first order after start-up: POST right after the stack says ready -> SHIPPED in the read model;
- HTTP burst: BENCH_BURST_ORDERS (2000) orders from BENCH_CLIENTS (32) keep-alive clients,
  with the peak memory of all the system's processes (RSS summed, sampled from /proc);
- steady: BENCH_STEADY_RATE (100) orders/s for BENCH_STEADY_SECONDS (60): POST->SHIPPED percentiles;
- direct: BENCH_DIRECT_ORDERS (20000) placed in bulk through the order service's code (event pipeline alone);
- minimal pipeline: ../shared/bench/minimal_pipeline.py against the same broker, BENCH_MINIMAL_ORDERS (20000),
  and the ratio of ours to it (skipped with a note when the file is not there; BENCH_MINIMAL_PIPELINE=path).
A count of 0 skips its row. The database follows SHOPSITE_DB like everything else.

    make bench
    BENCH_STEADY_SECONDS=10 BENCH_DIRECT_ORDERS=5000 BENCH_MINIMAL_ORDERS=5000 make bench   # quicker
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shopsite import config as settings_config  # noqa: E402
from shopsite.supervisor import Stack, StackConfig, config_from_env  # noqa: E402

BENCH = settings_config.load()

# Next to the project (../shared/bench); BENCH_MINIMAL_PIPELINE names it elsewhere (e.g. from a git worktree).
MINIMAL_PIPELINE = Path(BENCH.bench_minimal_pipeline or ROOT / ".." / "shared" / "bench" / "minimal_pipeline.py")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (its threads included), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class MemorySampler:
    """Peak of the summed RSS of the given processes and all their descendants, from /proc;
    and the CPU each named process used while it ran."""

    def __init__(self, roots: dict[str, int], every: float = 0.2):
        self.named, self.roots, self.every = roots, list(roots.values()), every
        self.peak = 0
        self.cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.named.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.cpu = {name: cpu_seconds(pid) - self._cpu0[name] for name, pid in self.named.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.sample())

    def sample(self) -> int:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
        total, todo, seen = 0, list(self.roots), set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
            except OSError:
                continue
            todo.extend(children.get(pid, []))
        return total


def issue_token(stack: Stack) -> str:
    proc = subprocess.run([sys.executable, "manage.py", "issue_ops_token", "bench-operator"], cwd=ROOT,
                          env=stack.env(), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"issue_ops_token failed: {proc.stderr}")
    # stdout may also carry JSON log lines; the token is the last line that is not one.
    return [line.strip() for line in proc.stdout.splitlines() if line.strip() and not line.startswith("{")][-1]


def loadgen(stack: Stack, *args: str) -> dict:
    """Run `manage.py loadgen ... --json` with the system's settings; its progress line goes to our stderr."""
    proc = subprocess.run([sys.executable, "manage.py", "loadgen", "--json", *args], cwd=ROOT, env=stack.env(),
                          stdout=subprocess.PIPE, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen {' '.join(args)} failed ({proc.returncode})")
    return _summary(proc.stdout)


def _summary(stdout: str) -> dict:
    """loadgen's summary: the last JSON line that is not a log line (log lines carry a "level")."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            parsed = json.loads(line)
            if "accepted_per_s" in parsed:
                return parsed
    raise RuntimeError(f"no loadgen summary in its output: {stdout[-500:]!r}")


def first_order_ms(stack: Stack, token: str) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.url, timeout=30, headers=headers) as http:
        started = time.monotonic()
        order_id = http.post("/api/orders", json={"items": [{"sku": "SKU-1", "qty": 1}], "total": 10}).json()["orderId"]
        deadline = started + 60
        while time.monotonic() < deadline:
            answer = http.get(f"/api/read/orders/{order_id}")
            if answer.status_code == 200 and answer.json()["currentStatus"] == "SHIPPED":
                return (time.monotonic() - started) * 1000
            time.sleep(0.002)
    raise TimeoutError("the first order did not ship within 60 s")


def minimal_pipeline(bootstrap: str, orders: int) -> float | str:
    if not MINIMAL_PIPELINE.is_file():
        return f"skipped: {MINIMAL_PIPELINE} not found"
    proc = subprocess.run([sys.executable, str(MINIMAL_PIPELINE), "--kafka", bootstrap, "--orders", str(orders)],
                          capture_output=True, text=True, timeout=1800)
    match = re.search(r"baseline_orders_per_s=(\d+)", proc.stdout)
    return float(match.group(1)) if match else f"failed: {(proc.stdout + proc.stderr)[-300:]}"


def fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.0f}{unit}"


def main() -> int:
    burst_n, clients = BENCH.bench_burst_orders, BENCH.bench_clients
    direct_n = BENCH.bench_direct_orders
    rate, seconds = BENCH.bench_steady_rate, BENCH.bench_steady_seconds
    minimal_n = BENCH.bench_minimal_orders
    artifacts = ROOT / "test-artifacts" / f"bench-{int(time.time())}"
    env_config = config_from_env(base_dir=ROOT)
    config = StackConfig(base_dir=ROOT, var_dir=artifacts / "var", log_dir=artifacts / "logs", port=0,
                         kafka_bootstrap=env_config.kafka_bootstrap, force_embedded_redis=True,
                         worker_services=env_config.worker_services)
    rows: list[tuple[str, str]] = []
    with Stack(config) as stack:  # __enter__ starts it and waits until every consumer group is assigned
        token = issue_token(stack)
        rows.append(("first order after start-up, POST -> SHIPPED", fmt(first_order_ms(stack, token), " ms")))
        base = ["--base", stack.url, "--token", token]
        burst = direct = None
        if burst_n > 0:
            subprocess.run([sys.executable, "manage.py", "loadgen", "--json", *base, "--orders", "1",
                            "--concurrency", "1"], cwd=ROOT, env=stack.env(), capture_output=True, timeout=120)
            with MemorySampler({name: stack.pid(name) for name in stack.names()}) as memory:
                burst = loadgen(stack, *base, "--orders", str(burst_n), "--concurrency", str(clients))
            rows += [
                (f"HTTP burst {burst_n} orders, {clients} clients: accepted POST/s", fmt(burst["accepted_per_s"])),
                ("HTTP burst: orders/s POST -> SHIPPED (read model)", fmt(burst["shipped_per_s"])),
                ("HTTP burst: POST -> SHIPPED p50 / p99",
                 f"{fmt(burst['p50_ms'])} / {fmt(burst['p99_ms'])} ms"),
                ("HTTP burst: peak RSS of all system processes", f"{memory.peak / 2**20:,.0f} MB"),
                ("HTTP burst: failures", str(burst["failures"])),
                ("HTTP burst: CPU ms per order, by process",
                 ", ".join(f"{name} {cpu * 1000 / burst_n:.1f}" for name, cpu in sorted(memory.cpu.items())
                           if cpu > 0) + f"; total {sum(memory.cpu.values()) * 1000 / burst_n:.1f}"),
            ]
        if seconds > 0 and rate > 0:
            steady = loadgen(stack, *base, "--orders", str(int(rate * seconds)), "--concurrency", "16",
                             "--rate", str(rate))
            rows += [
                (f"steady {rate:.0f} orders/s for {seconds:.0f} s: accepted POST/s", fmt(steady["accepted_per_s"])),
                ("steady: POST -> SHIPPED p50 / p95 / p99",
                 f"{fmt(steady['p50_ms'])} / {fmt(steady['p95_ms'])} / {fmt(steady['p99_ms'])} ms"),
                ("steady: failures", str(steady["failures"])),
            ]
        if direct_n > 0:
            direct = loadgen(stack, *base, "--direct", "--orders", str(direct_n))
            rows += [(f"direct {direct_n} orders (no HTTP): orders/s to SHIPPED", fmt(direct["shipped_per_s"])),
                     ("direct: failures", str(direct["failures"]))]
        if minimal_n > 0:
            minimal = minimal_pipeline(stack.kafka_bootstrap, minimal_n)
            if isinstance(minimal, str):
                rows.append(("minimal pipeline (same broker)", minimal))
            else:
                rows.append((f"minimal pipeline {minimal_n} orders (same broker): orders/s", fmt(minimal)))
                if direct:
                    rows.append(("ratio direct / minimal", f"{direct['shipped_per_s'] / minimal:.2f}"))
                if burst:
                    rows.append(("ratio HTTP burst / minimal", f"{burst['shipped_per_s'] / minimal:.2f}"))
        rows.append(("database; worker processes", f"{BENCH.database_backend}; {' | '.join(config.worker_services)}"))
    width = max(len(name) for name, _ in rows)
    print(f"\n{'figure'.ljust(width)} | value\n{'-' * width}-|------")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
