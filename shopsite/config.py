"""Every environment switch of shopsite, typed, in one frozen object: the only reader of os.environ.

One field per switch: its environment name, type, default and a one-line
meaning. `from_environ(mapping)` parses and validates a mapping (every
problem reported at once, naming the variable); `load()` does that for this
process's environment. The README's table of switches is checked against
these fields (tests/unit/test_config.py), and so is every module: no other
one reads os.environ.

Django-free, so the process supervisor, the test runner and bench use it
before any settings exist. In a Django process, shopsite/settings.py builds
the Django settings from it and the code reads django.conf.settings.

Empty means unset: `PORT=` is the default port, not an error.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopsite import databases  # Django-free
from shopsite.services import BY_NAME  # Django-free

# Where processes started without the supervisor find Kafka and Redis: the
# embedded broker's and a local Redis's addresses.
LOCAL_KAFKA = "127.0.0.1:9092"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOG_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """One or more environment variables have values shopsite cannot use."""


def setting(env: str, default: Any, doc: str, *, choices: tuple[str, ...] = (), minimum: float | None = None,
            case: Callable[[str], str] | None = None, secret: bool = False) -> Any:
    """A field read from the environment variable `env`.

    choices: the only values a text switch takes; minimum: a number's least value;
    case: str.lower / str.upper, so that `Postgres` or `debug` are understood;
    secret: never shown (repr, error messages).
    """
    meta = {"env": env, "doc": doc, "choices": choices, "minimum": minimum, "case": case}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


@dataclass(frozen=True)
class Config:
    # --- the system and its processes ---------------------------------------------
    port: int | None = setting(
        "PORT", None, "web port (dashboard, API, /health, /metrics); unset: 8000, or 4001..4005 for a "
        "service deployed alone", minimum=0)
    web_processes: int = setting(
        "SHOPSITE_WEB_PROCESSES", 0, "web (daphne) processes on the web port; 0: one per core",
        minimum=0)
    workers: str = setting(
        "SHOPSITE_WORKERS", "", "worker processes and their services, e.g. `orders,inventory;payment,shipping,"
        "readmodel`; unset: SQLite three workers (`orders,shipping;inventory,payment;readmodel`), PostgreSQL two "
        "running all services each")
    service: str = setting(
        "SHOPSITE_SERVICE", "", "run one service alone (see Per-service deployment); unset: all five",
        choices=("", *BY_NAME))
    process_name: str = setting(
        "SHOPSITE_PROCESS", "shopsite", "this process's name in log lines (the supervisor sets it per child)")
    var_dir: Path | None = setting(
        "SHOPSITE_VAR_DIR", None, "SQLite files, Prometheus multi-process files, beat schedule, secret key; "
        "unset: `var/` in the checkout")
    log_dir: Path | None = setting(
        "SHOPSITE_LOG_DIR", None, "the supervisor writes each child's output to a file here; unset: its own stdout")
    drain_seconds: float = setting(
        "SHOPSITE_DRAIN_SECONDS", 10.0, "how long the web server lets requests in flight finish on SIGTERM",
        minimum=0)
    order_group_max: int = setting(
        "ORDER_GROUP_MAX", 100, "orders a web process places in one transaction at most (its concurrent "
        "POST /api/orders share one); 1: a transaction per order", minimum=1)
    prometheus_multiproc_dir: Path | None = setting(
        "PROMETHEUS_MULTIPROC_DIR", None, "metrics files of every process (set by the supervisor; read by "
        "prometheus-client too); unset: each process's own metrics")

    # --- databases -----------------------------------------------------------------
    database_backend: str = setting(
        "SHOPSITE_DB", databases.SQLITE, "`sqlite` (files under `var/`), `postgres` (`DATABASE_URL`), `mongodb` "
        "(`MONGODB_URI`); `mongomock` is a test mode (in-process, see Databases)", choices=databases.BACKENDS,
        case=str.lower)
    database_url: str = setting(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shopsite", "PostgreSQL server and base name: "
        "databases `shopsite` (Django's own tables) and `shopsite_<alias>` per service")
    database_pool_size: int = setting(
        "DATABASE_POOL_SIZE", 4, "PostgreSQL: connections a process opens to one database at most "
        "(a pool; callers beyond it wait)", minimum=1)
    mongodb_uri: str = setting(
        "MONGODB_URI", "mongodb://127.0.0.1:27017/?replicaSet=rs0", "MongoDB deployment (a replica set: "
        "transactions need one); databases named as in the seed")

    # --- Kafka and the consumers ---------------------------------------------------
    kafka_bootstrap_servers: str | None = setting(
        "KAFKA_BOOTSTRAP_SERVERS", None, f"an external Kafka / Redpanda; unset: `make run` starts the embedded "
        f"broker (other processes: {LOCAL_KAFKA})")
    kafka_topic_partitions: int | None = setting(
        "KAFKA_TOPIC_PARTITIONS", None, "partitions per topic when topics are created; unset: 1 on SQLite (one "
        "consumer per service, see Throughput), else 4", minimum=1)
    kafka_topic_replication: int = setting(
        "KAFKA_TOPIC_REPLICATION", 1, "replicas per topic when topics are created", minimum=1)
    kafka_fetch_wait_ms: int = setting(
        "KAFKA_FETCH_WAIT_MS", 10, "how long the broker holds a fetch that finds nothing, in the consumers' saga "
        "lane (the events that move an order on; see Throughput)", minimum=1)
    kafka_other_fetch_wait_ms: int = setting(
        "KAFKA_OTHER_FETCH_WAIT_MS", 100, "the same in the other lane (bookkeeping, failures, compensations, "
        "operator requests, dead letters), which also fetches a partition at most once per this while messages "
        "keep coming: fewer, larger fetches cost the embedded broker far less", minimum=1)
    kafka_consumer_batch: int = setting(
        "KAFKA_CONSUMER_BATCH", 200, "messages a consumer takes and commits at once", minimum=1)
    kafka_group_prefix: str = setting(
        "KAFKA_GROUP_PREFIX", "shopsite", "consumer group names: `<prefix>.<service>`, and `<prefix>.<service>.other` "
        "for a service's other lane (see Throughput)")
    dead_letter_limit_per_minute: int = setting(
        "DEAD_LETTER_LIMIT_PER_MINUTE", 100, "more dead letters than this per minute from one consumer pause it "
        "(a bad deploy, not bad messages)", minimum=1)
    dead_letter_pause_seconds: float = setting(
        "DEAD_LETTER_PAUSE_SECONDS", 30.0, "how long such a consumer pauses", minimum=0)
    consumer_transient_backoff_seconds: float = setting(
        "CONSUMER_TRANSIENT_BACKOFF_SECONDS", 0.1, "first wait before retrying a batch after a transient "
        "database error", minimum=0)
    consumer_transient_backoff_max_seconds: float = setting(
        "CONSUMER_TRANSIENT_BACKOFF_MAX_SECONDS", 5.0, "longest wait between such retries", minimum=0)
    consumer_transient_retry_seconds: float = setting(
        "CONSUMER_TRANSIENT_RETRY_SECONDS", 30.0, "total retrying before the consumer pauses", minimum=0)
    consumer_transient_pause_seconds: float = setting(
        "CONSUMER_TRANSIENT_PAUSE_SECONDS", 10.0, "that pause, after which it comes back to the same messages",
        minimum=0)
    kafka_lost_log_republish_seconds: float = setting(
        "KAFKA_LOST_LOG_REPUBLISH_SECONDS", 300.0, "when the broker comes back without its log (its topics "
        "created again, e.g. the embedded broker restarted), outbox rows dispatched within this many seconds "
        "before are published again", minimum=0)

    # --- Redis, beat, retention ----------------------------------------------------
    redis_url: str | None = setting(
        "REDIS_URL", None, f"Celery broker and Channels layer; unset: `make run` uses {LOCAL_REDIS} if it "
        "answers, else an embedded redis-server")
    outbox_sweep_seconds: float = setting(
        "OUTBOX_SWEEP_SECONDS", 2.0, "how often beat sweeps each outbox for rows the after-commit publish missed",
        minimum=0.1)
    outbox_relay_poll_seconds: float = setting(
        "OUTBOX_RELAY_POLL_SECONDS", 1.0, "how often a relay loop looks for rows when no commit woke it "
        "(a lost wake-up)", minimum=0.01)
    outbox_relay_batch: int = setting(
        "OUTBOX_RELAY_BATCH", 1000, "outbox rows a relay publishes and marks per round", minimum=1)
    outbox_retention_hours: float = setting(
        "OUTBOX_RETENTION_HOURS", 72.0, "dispatched outbox rows older than this (since dispatch) are purged; "
        "undispatched rows never are", minimum=0)
    processed_events_retention_hours: float = setting(
        "PROCESSED_EVENTS_RETENTION_HOURS", 336.0, "processed_events rows older than this (14 days) are purged; "
        "keep it at least the topics' retention (see Retention)", minimum=0)
    retention_purge_seconds: float = setting(
        "RETENTION_PURGE_SECONDS", 3600.0, "how often beat purges each service's database", minimum=1)
    retention_purge_batch: int = setting(
        "RETENTION_PURGE_BATCH", 1000, "rows per delete when purging", minimum=1)

    # --- logs and the saga ---------------------------------------------------------
    log_level: str = setting(
        "LOG_LEVEL", "INFO", "log level of every process (JSON lines on stdout)", choices=LOG_LEVEL_NAMES,
        case=str.upper)
    log_levels: dict[str, str] = setting(
        "LOG_LEVELS", {}, "per-logger levels on top of `LOG_LEVEL`, `logger=LEVEL,...` (e.g. "
        "`shopsite.events.consumer=DEBUG`: a line per consumed event)")
    auto_compensation: bool = setting(
        "SHOPSITE_AUTO_COMPENSATION", False, "PaymentFailed releases the stock; ShippingFailed refunds and "
        "releases (else operators compensate from the dashboard)")

    # --- security --------------------------------------------------------------------
    debug: bool = setting("DJANGO_DEBUG", False, "Django's DEBUG; only then may a process start without a secret key")
    secret_key: str = setting(
        "DJANGO_SECRET_KEY", "", "required outside `DJANGO_DEBUG=1`; unset: `var/secret_key`, generated by "
        "`make run`", secret=True)
    generate_secret_key: bool = setting(
        "SHOPSITE_GENERATE_SECRET_KEY", False, "create `var/secret_key` when missing (`make run` sets it)")
    allowed_hosts: tuple[str, ...] = setting(
        "DJANGO_ALLOWED_HOSTS", ("127.0.0.1", "localhost", "[::1]", "testserver"),
        "host names the server answers (pages, API, streams)")
    https: bool = setting(
        "DJANGO_HTTPS", False, "production over TLS: secure cookies, HSTS, redirect (see Sign-in)")
    hsts_seconds: int | None = setting(
        "DJANGO_HSTS_SECONDS", None, "HSTS max-age; unset: a year with `DJANGO_HTTPS=1`, else 0", minimum=0)
    hsts_include_subdomains: bool = setting(
        "DJANGO_HSTS_INCLUDE_SUBDOMAINS", True, "HSTS covers subdomains (with HSTS on)")
    hsts_preload: bool = setting("DJANGO_HSTS_PRELOAD", True, "HSTS preload flag (with HSTS on)")
    trust_x_forwarded_proto: bool = setting(
        "DJANGO_TRUST_X_FORWARDED_PROTO", False, "trust the proxy's X-Forwarded-Proto (only behind a proxy that "
        "sets it)")
    session_cookie_age: int = setting(
        "SESSION_COOKIE_AGE", 12 * 3600, "seconds a dashboard sign-in lasts", minimum=1)
    axes_failure_limit: int = setting(
        "AXES_FAILURE_LIMIT", 5, "failed sign-ins per username and address before a lockout", minimum=1)
    axes_cooloff_hours: float = setting("AXES_COOLOFF_HOURS", 0.25, "how long a lockout lasts", minimum=0)
    api_token_cache_seconds: float = setting(
        "API_TOKEN_CACHE_SECONDS", 5.0, "how long a process trusts a token it validated (revocation delay "
        "elsewhere)", minimum=0)
    api_token_default_days: int = setting(
        "API_TOKEN_DEFAULT_DAYS", 90, "lifetime of a new API token unless given", minimum=1)
    sign_in_link_minutes: int = setting(
        "SIGN_IN_LINK_MINUTES", 15, "how long a one-time sign-in link is valid", minimum=1)
    request_body_max_bytes: int = setting(
        "REQUEST_BODY_MAX_BYTES", 2_621_440, "larger request bodies get 413 while arriving", minimum=1)

    # --- live dashboard ------------------------------------------------------------
    sse_heartbeat_seconds: float = setting(
        "SSE_HEARTBEAT_SECONDS", 15.0, "a live stream's keep-alive interval", minimum=0.1)
    sse_max_streams_per_user: int = setting(
        "SSE_MAX_STREAMS_PER_USER", 20, "live streams per user per web process (beyond: 503)", minimum=1)
    sse_max_streams: int = setting("SSE_MAX_STREAMS", 500, "live streams per web process (beyond: 503)", minimum=1)
    sse_max_age_seconds: float = setting(
        "SSE_MAX_AGE_SECONDS", 300.0, "a stream ends after this; the browser reconnects and misses nothing",
        minimum=1)
    sse_db_threads: int = setting("SSE_DB_THREADS", 8, "threads for the streams' database reads", minimum=1)

    # --- make bench ------------------------------------------------------------------
    bench_burst_orders: int = setting(
        "BENCH_BURST_ORDERS", 2000, "`make bench`: orders in the HTTP burst; 0 skips it", minimum=0)
    bench_clients: int = setting("BENCH_CLIENTS", 32, "`make bench`: concurrent HTTP clients in the burst", minimum=1)
    bench_direct_orders: int = setting(
        "BENCH_DIRECT_ORDERS", 20000, "`make bench`: orders placed in bulk without HTTP; 0 skips it", minimum=0)
    bench_steady_rate: float = setting("BENCH_STEADY_RATE", 100.0, "`make bench`: orders/s offered in the steady run",
                                       minimum=0)
    bench_steady_seconds: float = setting("BENCH_STEADY_SECONDS", 60.0, "`make bench`: length of the steady run; "
                                          "0 skips it", minimum=0)
    bench_minimal_orders: int = setting(
        "BENCH_MINIMAL_ORDERS", 20000, "`make bench`: orders through the minimal pipeline; 0 skips it", minimum=0)
    bench_minimal_pipeline: str | None = setting(
        "BENCH_MINIMAL_PIPELINE", None, "`make bench`: path of the minimal pipeline; unset: "
        "../shared/bench/minimal_pipeline.py next to the project")

    # --- derived values: one place for the fallbacks -----------------------------------
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_servers or LOCAL_KAFKA

    def redis(self) -> str:
        return self.redis_url or LOCAL_REDIS

    def var_dir_in(self, base_dir: Path) -> Path:
        return self.var_dir or base_dir / "var"

    def topic_partitions(self) -> int:
        # SQLite has one writer per database, so one consumer per service: a partition more per topic
        # gains nothing and costs the broker work on every fetch of every consumer (measured: broker CPU
        # per order 0.40 -> 0.16 ms with one partition instead of four).
        if self.kafka_topic_partitions is not None:
            return self.kafka_topic_partitions
        return 1 if self.database_backend == databases.SQLITE else 4

    def hsts(self) -> int:
        if self.hsts_seconds is not None:
            return self.hsts_seconds
        return 31_536_000 if self.https else 0


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(Config)
ENVIRONMENT_NAMES: frozenset[str] = frozenset(f.metadata["env"] for f in FIELDS)
_TYPES: dict[str, Any] = typing.get_type_hints(Config)


def from_environ(environ: Mapping[str, str]) -> Config:
    """The settings a mapping of environment variables asks for; ConfigError lists every bad value."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in FIELDS:
        name = f.metadata["env"]
        raw = (environ.get(name) or "").strip()
        if not raw:
            continue
        try:
            values[f.name] = _parse(raw, _TYPES[f.name], f.metadata)
        except ValueError as exc:
            shown = "<hidden>" if not f.repr else repr(raw)
            problems.append(f"{name}={shown}: {exc}")
    if problems:
        raise ConfigError("bad environment settings:\n  " + "\n  ".join(problems))
    return Config(**values)


def load() -> Config:
    """This process's settings, from its environment."""
    return from_environ(os.environ)


def environment() -> dict[str, str]:
    """A snapshot of this process's whole environment: what the supervisor's children inherit.

    Here so that the configuration module stays the one reader of os.environ;
    variables other programs read (PATH, HOME, PYTHONPATH, ...) pass through.
    """
    return dict(os.environ)


def default_text(f: dataclasses.Field) -> str:
    """A field's default as the README's table shows it: the value to type, or `unset`."""
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
    if value is None or value == "" or value == {}:
        return "unset"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _parse(raw: str, kind: Any, meta: Mapping[str, Any]) -> Any:
    if isinstance(kind, types.UnionType):  # X | None
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
    origin = typing.get_origin(kind) or kind
    value: Any
    if kind is bool:
        if raw.lower() not in _TRUE | _FALSE:
            raise ValueError("not a switch: use 1 or 0")
        return raw.lower() in _TRUE
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("not a whole number") from None
    elif kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("not a number") from None
    elif kind is Path:
        return Path(raw)
    elif origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    elif origin is dict:
        return _log_levels(raw)
    else:
        value = meta["case"](raw) if meta["case"] else raw
        if meta["choices"] and value not in meta["choices"]:
            raise ValueError(f"not one of {' | '.join(c for c in meta['choices'] if c)}")
        return value
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ValueError(f"must be at least {meta['minimum']:g}")
    return value


def _log_levels(raw: str) -> dict[str, str]:
    """``"a=DEBUG,b=WARNING"`` -> ``{"a": "DEBUG", "b": "WARNING"}``."""
    levels: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        name, _, level = part.partition("=")
        name, level = name.strip(), level.strip().upper()
        if not name or not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"{part.strip()!r} is not logger=LEVEL")
        levels[name] = level
    return levels
