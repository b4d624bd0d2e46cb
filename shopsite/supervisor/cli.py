"""The command line: ``python -m shopsite.supervisor`` (what ``make run`` calls).

Starts the whole system, prints where it is, then watches it from the main
thread: a child that dies is restarted (with backoff); a crash loop stops
everything with exit code 1; Ctrl-C or SIGTERM stops everything with 0.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from shopsite.config import ConfigError  # Django-free
from shopsite.services import BY_NAME  # Django-free table
from shopsite.supervisor.config import LOCALHOST, config_from_env
from shopsite.supervisor.stack import WATCH_INTERVAL_SECONDS, Stack

# manage.py commands run once the system is ready; each one's plain-text output
# lines (not its JSON log lines) are printed inside the banner. A newcomer's first
# need is to sign in: the all-in-one system prints a one-time link for a local operator.
BANNER_COMMANDS: tuple[Callable[[Stack], list[str]], ...] = (
    lambda stack: ["bootstrap_operator", "--base-url", stack.url],
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shopsite.supervisor",
        description="Start the whole shopsite system. Configured by the environment: PORT, "
        "KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, SHOPSITE_DB (DATABASE_URL, MONGODB_URI), SHOPSITE_VAR_DIR, SHOPSITE_WORKERS "
        '(e.g. "orders,inventory;payment,shipping,readmodel"), SHOPSITE_WEB_PROCESSES (default: one per core), '
        "SHOPSITE_LOG_DIR.",
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the system to be ready")
    parser.add_argument("--service", choices=list(BY_NAME),
                        help="run this one service alone: its web port (PORT, default 4001..4005), consumers, "
                        "outbox sweep and database; point KAFKA_BOOTSTRAP_SERVERS and REDIS_URL at the broker "
                        "and Redis the other services use")
    parser.add_argument("--infra", action="store_true",
                        help="start only the broker and Redis (embedded unless given) and print their addresses, "
                        "for services started separately with --service")
    args = parser.parse_args(argv)

    try:
        stack = Stack(config_from_env(service=args.service))
    except ConfigError as exc:
        print(f"shopsite: {exc}", file=sys.stderr, flush=True)
        return 2

    # SIGTERM (e.g. from a process manager) gets the same clean path as Ctrl-C. SIGINT is set
    # explicitly too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            if args.infra:
                stack.start_infrastructure(timeout=args.timeout)
            else:
                stack.start(timeout=args.timeout)
        except RuntimeError as exc:
            print(f"\nshopsite: failed to start:\n{exc}", file=sys.stderr, flush=True)
            return 1
        print(banner(stack, infra_only=args.infra, notices=[] if args.infra else notices(stack)), flush=True)
        while True:
            stack.supervise_once()
            if stack.failure is not None:
                return 1  # supervise_once said why and stopped everything
            time.sleep(WATCH_INTERVAL_SECONDS)
    except KeyboardInterrupt:
        print("\nshopsite: stopping ...", flush=True)
        _stop_uninterruptibly(stack)
        print("shopsite: stopped", flush=True)
        return 0


def _stop_uninterruptibly(stack: Stack) -> None:
    # A second Ctrl-C must not abort the shutdown half way and orphan children.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stack.stop()


def notices(stack: Stack) -> list[str]:
    """The plain-text lines BANNER_COMMANDS print against the running system."""
    lines: list[str] = []
    if stack.config.service:
        return lines  # the dashboard and sign-in pages are served by the all-in-one system only
    for argv in BANNER_COMMANDS:
        command = " ".join(argv(stack))
        proc = subprocess.run([sys.executable, "manage.py", *argv(stack)], cwd=stack.config.base_dir, env=stack.env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            lines.append(f"(`manage.py {command}` failed with exit code {proc.returncode})")
            continue
        lines += [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("{")]
    return lines


def banner(stack: Stack, infra_only: bool = False, notices: list[str] | None = None) -> str:
    kafka = f"{stack.kafka_bootstrap} ({'embedded tansu, in-memory' if stack.kafka_embedded else 'external'})"
    redis = f"{stack.redis_url} ({'embedded redis-server' if stack.redis_embedded else 'external'})"
    workers = ", ".join(f"worker-{n}: {s}" for n, s in enumerate(stack.worker_groups))
    if infra_only:
        head = ["  shopsite infrastructure is running; start services with:",
                f"  KAFKA_BOOTSTRAP_SERVERS={stack.kafka_bootstrap} REDIS_URL={stack.redis_url} \\",
                "    python -m shopsite.supervisor --service orders   (and inventory, payment, shipping, readmodel)"]
    elif stack.config.service:
        head = [f"  shopsite service {stack.config.service!r} is running:  http://{LOCALHOST}:{stack.port}/health"]
    else:
        head = [f"  shopsite is running:  dashboard  http://{LOCALHOST}:{stack.port}/"]
    details = [] if infra_only else [
        f"  web        {len(stack.web_names)} processes sharing port {stack.port}",
        f"  workers    {workers}",
        f"  database   {stack.databases.describe(stack.env(), stack.config.var_dir)}",
    ]
    lines = [
        "",
        "=" * 72,
        *head,
        f"  kafka      {kafka}",
        f"  redis      {redis}",
        *details,
        f"  var dir    {stack.config.var_dir}",
        *(f"  {line}" for line in notices or []),
        "  Ctrl-C stops everything.",
        "=" * 72,
        "",
    ]
    return "\n".join(lines)
