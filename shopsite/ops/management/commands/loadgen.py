"""`manage.py loadgen`: drive a running system and report accepted POST/s, orders/s to SHIPPED, latencies.

    manage.py loadgen --base http://127.0.0.1:8000 --token T --orders 2000 --concurrency 32
    manage.py loadgen --base http://127.0.0.1:8000 --token T --orders 6000 --concurrency 16 --rate 100
    manage.py loadgen --direct --orders 20000 [--base URL --token T to top up stock first]

--direct places orders through the order service's code in this process:
run it with the running system's database settings (same SHOPSITE_VAR_DIR
or DATABASE_URL, SHOPSITE_DB, REDIS_URL so its commits wake the relays).
"""

from __future__ import annotations

import asyncio
import json

from django.core.management.base import BaseCommand, CommandError

from shopsite import loadgen


class Command(BaseCommand):
    help = "Drive a running system with orders and report throughput and POST->SHIPPED latency."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--base", help="base URL of the running system, e.g. http://127.0.0.1:8000")
        parser.add_argument("--token", help="bearer token (manage.py issue_ops_token NAME prints one)")
        parser.add_argument("--orders", type=int, default=1000)
        parser.add_argument("--concurrency", type=int, default=32, help="HTTP clients (connections)")
        parser.add_argument("--rate", type=float, default=None, help="orders per second (default: as fast as possible)")
        parser.add_argument("--direct", action="store_true", help="place orders through the order service's code, no HTTP")
        parser.add_argument("--chunk", type=int, default=500, help="--direct: orders per transaction")
        parser.add_argument("--timeout", type=float, default=300.0,
                            help="give up waiting for SHIPPED after this many seconds without progress")
        parser.add_argument("--no-restock", action="store_true", help="do not top up stock before starting")
        parser.add_argument("--json", action="store_true", help="print only the summary as one JSON line")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        if options["orders"] < 1 or options["concurrency"] < 1:
            raise CommandError("--orders and --concurrency must be at least 1")
        if options["rate"] is not None and options["rate"] <= 0:
            raise CommandError("--rate must be positive")
        if not options["direct"] and not options["base"]:
            raise CommandError("--base URL is required (or --direct)")
        if options["base"] and not options["no_restock"]:
            loadgen.ensure_stock(options["base"], options["token"], options["orders"])
        if options["direct"]:
            report = loadgen.run_direct(options["orders"], options["rate"], chunk=options["chunk"],
                                        timeout=options["timeout"], out=self.stderr._out)
        else:
            report = asyncio.run(loadgen.run_http(options["base"].rstrip("/"), options["token"], options["orders"],
                                                  options["concurrency"], options["rate"], timeout=options["timeout"],
                                                  out=self.stderr._out))
        summary = report.summary()
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            loadgen.render(summary, self.stdout.write)
