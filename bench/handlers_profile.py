"""CPU per order in each service's consumer, in-process: no broker, no web, no workers.

Places N orders through the order service's own code, then plays the happy
path hop by hop: each service's undispatched outbox rows become Kafka-like
messages for every service that consumes their topic, fed to that service's
BatchProcessor in batches of KAFKA_CONSUMER_BATCH, the way a worker's
consumer loop would. Prints CPU ms per order per consuming service, and with
--profile a cProfile summary grouped by component (our apps, Django ORM,
the database driver, JSON, pydantic, ...).

    .venv/bin/python bench/handlers_profile.py            # 2,000 orders on SQLite in a temp dir
    .venv/bin/python bench/handlers_profile.py --orders 500 --profile

The databases follow SHOPSITE_DB; on SQLite they live in a temporary
directory (SHOPSITE_VAR_DIR, removed afterwards) so nothing touches
`make run`'s data. On PostgreSQL point DATABASE_URL at a database name of
its own (it reads every undispatched outbox row) and drop it afterwards;
the database server's own CPU is not in these numbers.
Numbers are for reading, not asserting.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass
class Message:
    """What BatchProcessor reads of a confluent_kafka.Message."""

    _value: bytes
    _topic: str
    _key: bytes
    _offset: int

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def headers(self) -> list:
        return []

    def error(self) -> None:
        return None


def _setup(var_dir: str) -> None:
    os.environ.setdefault("SHOPSITE_VAR_DIR", var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
    os.environ.setdefault("LOG_LEVEL", "INFO")  # as deployed: log lines cost CPU too
    import django

    django.setup()
    from django.core.management import call_command

    from shopsite.celery import app

    app.conf.broker_url = "memory://"  # place_order's publish-after-commit stays in process
    call_command("migrate_all", verbosity=0)


def _component(filename: str) -> str:
    """Which part of the system a profiled function belongs to."""
    path = filename.replace("\\", "/")
    for marker, name in (("/django/db/", "django ORM"), ("/django_mongodb_backend/", "django-mongodb-backend"),
                         ("/mongomock", "mongomock"), ("/pymongo/", "pymongo"), ("/bson/", "pymongo"),
                         ("sqlite3", "sqlite3 driver"), ("/psycopg", "psycopg driver"), ("/pydantic", "pydantic"),
                         ("/json/", "json"), ("/logging/", "logging"), ("/prometheus_client/", "prometheus"),
                         ("/django/", "django (other)")):
        if marker in path:
            return name
    if "/site-packages/" not in path:
        for app in ("orders", "inventory", "payment", "shipping", "readmodel"):
            if f"/{app}/" in path:
                return f"app: {app}"
        if "/shopsite/events/" in path:
            return "shopsite.events (consumer, envelope, outbox)"
        if "/shopsite/" in path:
            return "shopsite (other)"
    if path.startswith("~") or path.startswith("<"):
        return "builtins (C: sqlite execute, json, ...)"
    return "other python"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="shopsite-handlers-bench-") as var_dir:
        try:
            return _run(var_dir)
        finally:
            from django.db import connections

            connections.close_all()


def _run(var_dir: str) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200, help="messages per consumed batch")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary by component")
    parser.add_argument("--service", help="profile only this consuming service")
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with the most cumulative time")
    parser.add_argument("--sort", default="cumulative", help="pstats sort key for --top (cumulative, tottime)")
    args = parser.parse_args()

    _setup(var_dir)
    from inventory.application import set_available
    from orders.commands import place_order
    from shopsite.events.consumer import BatchProcessor, RetryPolicy
    from shopsite.events.models import OutboxMessage
    from shopsite.events.registry import consumer_specs
    from shopsite.services import BY_NAME

    import threading

    from shopsite.events import outbox_signal

    from shopsite.events.worker import collect_garbage_less_often

    specs = consumer_specs()
    for spec in specs:  # as in a worker whose relay loop holds the outbox: a commit wakes it in-process
        outbox_signal.register(spec.service.alias, threading.Event())
    collect_garbage_less_often()  # as a worker does
    processors = {s.name: BatchProcessor(s, RetryPolicy(attempts=1, sleep=lambda _s: None)) for s in specs}
    consumers_of: dict[str, list[str]] = defaultdict(list)
    for spec in specs:
        for topic in spec.topics:
            consumers_of[topic].append(spec.name)

    for sku in ("SKU-1", "SKU-2", "SKU-3"):
        set_available(sku, 10 * args.orders)
    started = time.perf_counter()
    for i in range(args.orders):
        place_order([{"sku": f"SKU-{1 + i % 3}", "qty": 1}, {"sku": "SKU-2", "qty": 1}], "12.50")
    print(f"placed {args.orders} orders in {time.perf_counter() - started:.1f} s (not counted below)")

    cpu: dict[str, float] = defaultdict(float)
    offsets: dict[str, int] = defaultdict(int)
    profiler = cProfile.Profile() if args.profile or args.top else None
    # Hop by hop: orders -> inventory -> payment -> shipping, each hop's outbox to its consumers.
    for producer in ("orders", "inventory", "payment", "shipping"):
        alias = BY_NAME[producer].alias
        rows = list(OutboxMessage.objects.using(alias).filter(dispatched=False).order_by("id"))
        OutboxMessage.objects.using(alias).filter(pk__in=[r.pk for r in rows]).update(dispatched=True)
        by_consumer: dict[str, list[Message]] = defaultdict(list)
        for row in rows:
            raw = json.dumps(row.payload).encode()
            offsets[row.topic] += 1
            for name in consumers_of[row.topic]:
                by_consumer[name].append(Message(raw, row.topic, row.key.encode(), offsets[row.topic]))
        for name, messages in by_consumer.items():
            for start in range(0, len(messages), args.batch):
                batch = messages[start:start + args.batch]
                t0 = time.process_time()
                profiling = profiler is not None and args.service in (None, name)
                if profiling:
                    profiler.enable()  # type: ignore[union-attr]
                processors[name].process(batch)
                if profiling:
                    profiler.disable()  # type: ignore[union-attr]
                cpu[name] += time.process_time() - t0

    from django.conf import settings

    from readmodel.models import OrderProjection

    shipped = OrderProjection.objects.using(BY_NAME["readmodel"].alias).filter(current_status="SHIPPED").count()
    print(f"read model: {shipped}/{args.orders} orders SHIPPED")
    print(f"\nCPU ms per order, by consuming service ({settings.SHOPSITE_DB}, "
          f"batches of {args.batch}):")
    for name in ("orders", "inventory", "payment", "shipping", "readmodel"):
        print(f"  {name:<10} {1000 * cpu[name] / args.orders:7.3f}")
    total = sum(cpu.values())
    print(f"  {'total':<10} {1000 * total / args.orders:7.3f}   (~{args.orders / total:,.0f} orders/s of consumer CPU)")

    if profiler and args.top:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    if profiler and args.profile:
        stats = pstats.Stats(profiler)
        by_component: dict[str, float] = defaultdict(float)
        entries = stats.stats.items()  # type: ignore[attr-defined]
        for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in entries:
            by_component[_component(filename)] += tottime
        profiled = sum(by_component.values())
        print("\nprofile: own time by component, ms per order (cProfile adds overhead; compare shares)")
        for name, seconds in sorted(by_component.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<46} {1000 * seconds / args.orders:7.3f}  {100 * seconds / profiled:5.1f}%")
    return 0 if shipped == args.orders else 1


if __name__ == "__main__":
    raise SystemExit(main())
