"""Settings for every shopsite process (daphne, celery worker, beat, tests).

Everything that differs between a laptop and production comes from the
environment, read, typed and validated in one place: shopsite/config.py
(CONFIG below; the README's table of switches lists its fields). Defaults are
the embedded ones that `make run` provides.
"""

from __future__ import annotations

import logging
from pathlib import Path

from shopsite import config, databases, secret_key
from shopsite.services import served_services, task_queue


CONFIG = config.load()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = CONFIG.var_dir_in(BASE_DIR)

DEBUG = CONFIG.debug
# Never a key from the repository outside DEBUG: DJANGO_SECRET_KEY, or the file
# that `make run` generates for this checkout (shopsite/secret_key.py), or no start.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
if CONFIG.generate_secret_key and not CONFIG.secret_key:
    secret_key.ensure(SECRET_KEY_FILE)
SECRET_KEY = secret_key.configured(CONFIG.secret_key, SECRET_KEY_FILE, debug=DEBUG)
ALLOWED_HOSTS = list(CONFIG.allowed_hosts)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    # Swagger UI's files for /api/docs, served as static files: no CDN at run time.
    "drf_spectacular_sidecar",
    "axes",
    "shopsite.events",
    "shopsite.ops",
    "shopsite.dashboard",
    "orders",
    "inventory",
    "payment",
    "shipping",
    "readmodel",
]

# Every one runs sync and async. The web server loads Django's own in the forms of
# shopsite/ops/inline.py, whose hooks stay in the event loop on an async request.
MIDDLEWARE = [
    # First, so its latency and status cover everything below it.
    "shopsite.ops.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Bearer tokens: after the session user is known, before CSRF is checked (in process_view).
    "shopsite.ops.auth.TokenAuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Per-service deployment: SHOPSITE_SERVICE=orders serves only the order
# service's endpoints, checks only its database, sweeps only its outbox.
SHOPSITE_SERVICE = CONFIG.service
SERVED_SERVICES = served_services(SHOPSITE_SERVICE)
# This process's name in its log lines (the supervisor names each child).
SHOPSITE_PROCESS = CONFIG.process_name

ROOT_URLCONF = "shopsite.urls"
ASGI_APPLICATION = "shopsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases: one per service, on the backend SHOPSITE_DB names --------------
SHOPSITE_DB = CONFIG.database_backend
DATABASE_POOL_SIZE = CONFIG.database_pool_size  # PostgreSQL: the most connections per database per process
DATABASES = databases.configured_databases(SHOPSITE_DB, VAR_DIR, CONFIG.database_url, CONFIG.mongodb_uri,
                                           pool_size=DATABASE_POOL_SIZE, process_name=SHOPSITE_PROCESS)
DATABASE_ROUTERS = ["shopsite.db_router.ServiceRouter"]
# Our own models declare their primary keys; this only decides the contrib
# apps' ids and the outbox's `_id` (shopsite/events/models.py).
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if SHOPSITE_DB in databases.MONGO_BACKENDS:
    # What django-mongodb-backend's configuration guide prescribes: ObjectId
    # primary keys everywhere, contrib apps whose AppConfig says so, and
    # migrations written for those ids (MongoDB has no integer sequences).
    DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
    _MONGO_APP_CONFIGS = {
        "django.contrib.admin": "shopsite.mongo.apps.MongoAdminConfig",
        "django.contrib.auth": "shopsite.mongo.apps.MongoAuthConfig",
        "django.contrib.contenttypes": "shopsite.mongo.apps.MongoContentTypesConfig",
    }
    INSTALLED_APPS = [_MONGO_APP_CONFIGS.get(app, app) for app in INSTALLED_APPS]
    MIGRATION_MODULES = {
        "admin": "shopsite.mongo.migrations.admin",
        "auth": "shopsite.mongo.migrations.auth",
        "contenttypes": "shopsite.mongo.migrations.contenttypes",
        # The outbox's `_id` is an ObjectId here and a sequence on SQL.
        "events": "shopsite.mongo.migrations.events",
    }
if SHOPSITE_DB == databases.MONGOMOCK:
    # Test mode: django-mongodb-backend against in-process mongomock (tests only).
    INSTALLED_APPS.append("shopsite.testing.apps.MongomockShimConfig")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- Security ---------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username/address before any password check.
    "axes.backends.AxesStandaloneBackend",
    "shopsite.ops.backends.PermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): 5 failures per username and address lock them out for 15 minutes.
AXES_FAILURE_LIMIT = CONFIG.axes_failure_limit
AXES_COOLOFF_TIME = CONFIG.axes_cooloff_hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its start-up banner in every process says nothing an operator needs
if SHOPSITE_DB in databases.MONGO_BACKENDS:
    # axes' tables use integer ids, which MongoDB has not: count failures in the cache
    # instead (per process with the default local-memory cache).
    AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
    MIGRATION_MODULES["axes"] = None

# Served over HTTPS (DJANGO_HTTPS=1, what production is): cookies only over TLS,
# HSTS, plain HTTP redirected. Off for the embedded `make run` on 127.0.0.1.
HTTPS = CONFIG.https
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = CONFIG.hsts()
SECURE_HSTS_INCLUDE_SUBDOMAINS = CONFIG.hsts_include_subdomains
SECURE_HSTS_PRELOAD = CONFIG.hsts_preload
# Probes and scrapers talk plain HTTP inside the network; they are not redirected.
SECURE_REDIRECT_EXEMPT = [r"^health", r"^metrics$"]
if CONFIG.trust_x_forwarded_proto:
    # Only behind a proxy that sets (and strips client-sent) X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_AGE = CONFIG.session_cookie_age

# API tokens (shopsite/ops/tokens.py): a validated token is remembered per process for
# this long, so a revoked token or deactivated user may pass for up to this many seconds
# in a process that saw it just before; 0 checks the database on every request.
API_TOKEN_CACHE_SECONDS = CONFIG.api_token_cache_seconds
API_TOKEN_DEFAULT_DAYS = CONFIG.api_token_default_days
SIGN_IN_LINK_MINUTES = CONFIG.sign_in_link_minutes

# Request bodies: refused with 413 while arriving, before Django buffers them (shopsite/bodylimit.py).
REQUEST_BODY_MAX_BYTES = CONFIG.request_body_max_bytes
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

# --- Kafka -------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = CONFIG.kafka_bootstrap()
KAFKA_TOPIC_PARTITIONS = CONFIG.topic_partitions()
KAFKA_TOPIC_REPLICATION = CONFIG.kafka_topic_replication
KAFKA_CONSUMER_BATCH = CONFIG.kafka_consumer_batch
KAFKA_FETCH_WAIT_MS = CONFIG.kafka_fetch_wait_ms
KAFKA_OTHER_FETCH_WAIT_MS = CONFIG.kafka_other_fetch_wait_ms
KAFKA_GROUP_PREFIX = CONFIG.kafka_group_prefix
# More dead letters than this per minute from one consumer looks like a bad
# deploy, not bad messages: the consumer pauses instead of dead-lettering on.
DEAD_LETTER_LIMIT_PER_MINUTE = CONFIG.dead_letter_limit_per_minute
DEAD_LETTER_PAUSE_SECONDS = CONFIG.dead_letter_pause_seconds
# A transient database error (locked, deadlock, serialization failure, connection
# lost, WriteConflict) is never a reason to dead-letter: the consumer retries with
# exponential backoff (first wait, longest wait, total waited), then pauses and
# comes back to the same uncommitted messages.
CONSUMER_TRANSIENT_BACKOFF_SECONDS = CONFIG.consumer_transient_backoff_seconds
CONSUMER_TRANSIENT_BACKOFF_MAX_SECONDS = CONFIG.consumer_transient_backoff_max_seconds
CONSUMER_TRANSIENT_RETRY_SECONDS = CONFIG.consumer_transient_retry_seconds
CONSUMER_TRANSIENT_PAUSE_SECONDS = CONFIG.consumer_transient_pause_seconds
# A broker that lost its log (restarted empty) no longer has what it acknowledged: each
# worker publishes again its outbox rows dispatched this recently (shopsite/events/lost_log.py).
KAFKA_LOST_LOG_REPUBLISH_SECONDS = CONFIG.kafka_lost_log_republish_seconds

# --- Redis: Celery broker and Channels layer ----------------------------------
REDIS_URL = CONFIG.redis()

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
OUTBOX_SWEEP_SECONDS = CONFIG.outbox_sweep_seconds
# Relay loops (one per served outbox in each worker) are woken after every commit
# (shopsite/events/outbox_signal.py); this poll only covers a lost wake-up.
OUTBOX_RELAY_POLL_SECONDS = CONFIG.outbox_relay_poll_seconds
OUTBOX_RELAY_BATCH = CONFIG.outbox_relay_batch
# Outbox tasks go to their service's queue (outbox.<service>), consumed only by
# workers running that service: see shopsite/services.py task_queue.
CELERY_TASK_ROUTES = ("shopsite.events.tasks.route_task",)
# One sweep per served service (all of them unless SHOPSITE_SERVICE names one).
CELERY_BEAT_SCHEDULE = {
    f"sweep-outbox-{service.name}": {
        "task": "shopsite.events.tasks.sweep_outbox",
        "schedule": OUTBOX_SWEEP_SECONDS,
        "args": (service.alias,),
        # A sweep that waited longer than its period is superseded by the next.
        "options": {"expires": OUTBOX_SWEEP_SECONDS * 2},
    }
    for service in SERVED_SERVICES
}

# --- Retention (shopsite/events/retention.py) -------------------------------------
# Dispatched outbox rows are only history once the broker has them: kept 3 days
# for debugging. Rows not dispatched (pending or parked) are never purged.
OUTBOX_RETENTION_HOURS = CONFIG.outbox_retention_hours
# processed_events must outlive the broker's retention: a message still on a topic
# can be delivered again (group offset reset, rewind, replay), and without its row
# it would be applied twice. Kafka keeps messages 7 days by default
# (log.retention.hours=168); twice that (14 days) leaves room for a consumer that
# lagged or a rewind near the end of that window. Raise it with the topics' retention.
PROCESSED_EVENTS_RETENTION_HOURS = CONFIG.processed_events_retention_hours
RETENTION_PURGE_BATCH = CONFIG.retention_purge_batch
RETENTION_PURGE_SECONDS = CONFIG.retention_purge_seconds
# One purge per served service, on that service's queue (only its workers reach its database).
CELERY_BEAT_SCHEDULE.update({
    f"purge-retention-{service.name}": {
        "task": "shopsite.events.retention.purge_expired",
        "schedule": RETENTION_PURGE_SECONDS,
        "args": (service.alias,),
        "options": {"queue": task_queue(service), "expires": RETENTION_PURGE_SECONDS},
    }
    for service in SERVED_SERVICES
})

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    },
}

# --- Logging: one JSON object per line on stdout -----------------------------
LOG_LEVEL = CONFIG.log_level
# Loggers that repeat themselves at INFO without telling an operator anything
# (a line per task run, per beat tick); their warnings still come through.
_QUIET_AT_INFO = ["celery.app.trace", "celery.worker.strategy", "celery.beat", "django.db.backends"]
# Per-logger levels on top of LOG_LEVEL, "logger=LEVEL,...": e.g. one line per consumed
# event (at DEBUG, off the hot path) with LOG_LEVELS=shopsite.events.consumer=DEBUG.
LOG_LEVELS: dict[str, str] = dict(CONFIG.log_levels)
_LEVEL_NO = logging.getLevelName(LOG_LEVEL)
_QUIET_LEVEL = logging.getLevelName(max(_LEVEL_NO if isinstance(_LEVEL_NO, int) else logging.INFO, logging.WARNING))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shopsite.jsonlog.JsonFormatter",
                            "process": SHOPSITE_PROCESS, "service": SHOPSITE_SERVICE}},
    "filters": {"throttle": {"()": "shopsite.jsonlog.RepeatThrottle", "seconds": 10.0}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        **{name: {"level": _QUIET_LEVEL} for name in _QUIET_AT_INFO},
        # The HTTP middleware writes one access line per request with route, status and
        # latency; Django's own "Not Found: /path" warnings would only repeat it.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        # librdkafka and our Kafka client errors repeat many times a second during an outage.
        "librdkafka": {"filters": ["throttle"]},
        "shopsite.kafka": {"filters": ["throttle"]},
        "shopsite.ops.health": {"filters": ["throttle"]},
        # psycopg's pool logs each connection it hands out at INFO, and "error connecting" at every retry
        # while the server is away.
        "psycopg.pool": {"level": _QUIET_LEVEL, "filters": ["throttle"]},
    },
}
for _name, _level in LOG_LEVELS.items():
    LOGGING["loggers"][_name] = {**LOGGING["loggers"].get(_name, {}), "level": _level}

# --- Saga policy ---------------------------------------------------------------
# Off by default, as in the seed where operators trigger compensation from the
# dashboard. When on: PaymentFailed releases the stock; ShippingFailed refunds
# the payment and releases the stock.
AUTO_COMPENSATION = CONFIG.auto_compensation

# --- Live dashboard ---------------------------------------------------------------
SSE_HEARTBEAT_SECONDS = CONFIG.sse_heartbeat_seconds
# Per web process: open streams per user and in all; beyond either, 503 with Retry-After.
SSE_MAX_STREAMS_PER_USER = CONFIG.sse_max_streams_per_user
SSE_MAX_STREAMS = CONFIG.sse_max_streams
# A stream ends after this long; the browser reconnects with Last-Event-ID and misses nothing.
SSE_MAX_AGE_SECONDS = CONFIG.sse_max_age_seconds
# Threads for the streams' database reads, apart from the one thread of sync views.
SSE_DB_THREADS = CONFIG.sse_db_threads
# How long a web process lets requests in flight finish on SIGTERM (shopsite/web.py).
WEB_DRAIN_SECONDS = CONFIG.drain_seconds
# Concurrent POST /api/orders of a web process share a transaction, up to this many (orders/writer.py).
ORDER_GROUP_MAX = CONFIG.order_group_max
# Multi-process metrics (set by the supervisor): where /metrics reads every process's files.
PROMETHEUS_MULTIPROC_DIR = CONFIG.prometheus_multiproc_dir
