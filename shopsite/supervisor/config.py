"""The supervisor's configuration: a StackConfig from the switches in shopsite/config.py.

The supervisor is Django-free by design (it runs before any database exists,
and tests import it without settings), so it cannot read django.conf.settings.
It takes the switches it needs (PORT, SHOPSITE_VAR_DIR, KAFKA_BOOTSTRAP_SERVERS,
REDIS_URL, SHOPSITE_DB, SHOPSITE_WORKERS, ...) from the same typed settings
object the children's shopsite/settings.py builds on, so names and defaults
are written once, and hands the children an environment built from a snapshot
(shopsite.config.environment()).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shopsite import config as settings_config  # Django-free
from shopsite import databases  # Django-free

LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKER_SERVICES = ["orders,inventory,payment,shipping,readmodel"]
# SQLite: the services split over three processes of about equal CPU per order
# (measured, ms: orders 0.31 + shipping 0.12, inventory 0.25 + payment 0.19,
# read model 0.43), so no process's one interpreter lock caps the pipeline and
# each database file still has one writing consumer. One process per service
# did no better and took 250 MB more; the former two (orders, inventory and
# the read model in one) held that process at 85 % of a core.
SQLITE_WORKER_GROUPS = ["orders,shipping", "inventory,payment", "readmodel"]


def cores() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class RestartPolicy:
    """When a child that died is started again, and when the supervisor gives up.

    A child's n-th death within `window_seconds` is followed by a restart after
    first_delay * 2**(n-1) seconds (capped at max_delay); its `max_deaths`-th
    death within the window is a crash loop: everything stops.
    """

    max_deaths: int = 5
    window_seconds: float = 60.0
    first_delay: float = 0.5
    max_delay: float = 10.0


@dataclass
class StackConfig:
    base_dir: Path
    var_dir: Path
    port: int = DEFAULT_PORT  # 0 -> any free port (parallel test stacks)
    kafka_bootstrap: str | None = None
    redis_url: str | None = None
    force_embedded_redis: bool = False
    worker_services: list[str] = field(
        default_factory=lambda: default_worker_groups(settings_config.load().database_backend))
    # Web processes on the web port; 0 -> one per core.
    web_processes: int = 0
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Run one service alone (per-service deployment): its endpoints, consumers,
    # outbox sweep and database only. None = all five in one system.
    service: str | None = None
    # PostgreSQL: create this stack's own databases and drop them on stop (False: DATABASE_URL's).
    isolated_databases: bool = True
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    # A code-built stack (tests, bench) watches its children from a thread of its own;
    # the command line watches them from its main thread instead (see cli.py).
    watch_in_background: bool = True
    # What the children inherit; extra_env and the stack's own settings go on top.
    environ: dict[str, str] = field(default_factory=settings_config.environment)

    def merged_environ(self) -> dict[str, str]:
        return {**self.environ, **self.extra_env}

    @property
    def web_count(self) -> int:
        return self.web_processes if self.web_processes > 0 else cores()


def default_worker_groups(backend: str) -> list[str]:
    """Worker processes shaped by what the database allows.

    PostgreSQL: two processes running every service; row locks let consumers
    of one group run in parallel (Kafka splits the partitions between them).
    SQLite serialises writers per file, so a second consumer of the same
    service would only queue on its lock: there, the services are split.
    """
    if backend == databases.POSTGRES:
        return list(DEFAULT_WORKER_SERVICES) * 2
    return list(SQLITE_WORKER_GROUPS)


def parse_workers(value: str | None, default: list[str] | None = None) -> list[str]:
    """``"a,b;c"`` -> ``["a,b", "c"]``: one worker process per ``;`` group."""
    fallback = list(default) if default is not None else list(DEFAULT_WORKER_SERVICES)
    if not value or not value.strip():
        return fallback
    groups = []
    for group in value.split(";"):
        services = [s.strip() for s in group.split(",") if s.strip()]
        if services:
            groups.append(",".join(services))
    return groups or fallback


def config_from_env(environ: Mapping[str, str] | None = None, base_dir: Path | None = None,
                    service: str | None = None) -> StackConfig:
    """`make run`'s configuration: PORT, SHOPSITE_WORKERS, SHOPSITE_WEB_PROCESSES, KAFKA_BOOTSTRAP_SERVERS, ...

    `environ` (default: this process's environment) is also what the children inherit.
    """
    environ = settings_config.environment() if environ is None else dict(environ)
    switches = settings_config.from_environ(environ)
    base_dir = base_dir or Path(__file__).resolve().parent.parent.parent
    service = service or switches.service or None
    if service is not None:
        from shopsite.services import BY_NAME  # Django-free table

        if service not in BY_NAME:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(BY_NAME)}")
        default_port, workers = BY_NAME[service].web_port, [service]
    else:
        default_port, workers = DEFAULT_PORT, parse_workers(switches.workers,
                                                            default_worker_groups(switches.database_backend))
    return StackConfig(
        base_dir=base_dir,
        var_dir=switches.var_dir_in(base_dir),
        port=default_port if switches.port is None else switches.port,
        kafka_bootstrap=switches.kafka_bootstrap_servers,
        redis_url=switches.redis_url,
        worker_services=workers,
        web_processes=switches.web_processes,
        log_dir=switches.log_dir,
        service=service,
        isolated_databases=False,  # make run keeps its data in DATABASE_URL's databases
        watch_in_background=False,
        environ=environ,
    )
