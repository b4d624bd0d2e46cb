"""Settings for every shopsite process (daphne, celery worker, beat, tests).

Everything that differs between a laptop and production comes from the
environment; defaults are the embedded ones that `make run` provides.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from shopsite import databases, secret_key
from shopsite.services import served_services, task_queue


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SHOPSITE_VAR_DIR", BASE_DIR / "var"))

DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
# Never a key from the repository outside DEBUG: DJANGO_SECRET_KEY, or the file
# that `make run` generates for this checkout (shopsite/secret_key.py), or no start.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
if os.environ.get("SHOPSITE_GENERATE_SECRET_KEY", "0") == "1" and not os.environ.get("DJANGO_SECRET_KEY"):
    secret_key.ensure(SECRET_KEY_FILE)
SECRET_KEY = secret_key.configured(os.environ.get("DJANGO_SECRET_KEY", ""), SECRET_KEY_FILE, debug=DEBUG)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",")

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
SERVED_SERVICES = served_services()
SHOPSITE_SERVICE = os.environ.get("SHOPSITE_SERVICE", "")

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
SHOPSITE_DB = databases.backend_name()
DATABASES = databases.configured_databases(VAR_DIR)
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
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "0.25"))
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
HTTPS = os.environ.get("DJANGO_HTTPS", "0") == "1"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = os.environ.get("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "1") == "1"
SECURE_HSTS_PRELOAD = os.environ.get("DJANGO_HSTS_PRELOAD", "1") == "1"
# Probes and scrapers talk plain HTTP inside the network; they are not redirected.
SECURE_REDIRECT_EXEMPT = [r"^health", r"^metrics$"]
if os.environ.get("DJANGO_TRUST_X_FORWARDED_PROTO", "0") == "1":
    # Only behind a proxy that sets (and strips client-sent) X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))

# API tokens (shopsite/ops/tokens.py): a validated token is remembered per process for
# this long, so a revoked token or deactivated user may pass for up to this many seconds
# in a process that saw it just before; 0 checks the database on every request.
API_TOKEN_CACHE_SECONDS = float(os.environ.get("API_TOKEN_CACHE_SECONDS", "5"))
API_TOKEN_DEFAULT_DAYS = int(os.environ.get("API_TOKEN_DEFAULT_DAYS", "90"))
SIGN_IN_LINK_MINUTES = int(os.environ.get("SIGN_IN_LINK_MINUTES", "15"))

# Request bodies: refused with 413 while arriving, before Django buffers them (shopsite/bodylimit.py).
REQUEST_BODY_MAX_BYTES = int(os.environ.get("REQUEST_BODY_MAX_BYTES", str(2_621_440)))
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

# --- Kafka -------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
KAFKA_TOPIC_PARTITIONS = int(os.environ.get("KAFKA_TOPIC_PARTITIONS", "4"))
KAFKA_TOPIC_REPLICATION = int(os.environ.get("KAFKA_TOPIC_REPLICATION", "1"))
KAFKA_CONSUMER_BATCH = int(os.environ.get("KAFKA_CONSUMER_BATCH", "200"))
KAFKA_GROUP_PREFIX = os.environ.get("KAFKA_GROUP_PREFIX", "shopsite")
# More dead letters than this per minute from one consumer looks like a bad
# deploy, not bad messages: the consumer pauses instead of dead-lettering on.
DEAD_LETTER_LIMIT_PER_MINUTE = int(os.environ.get("DEAD_LETTER_LIMIT_PER_MINUTE", "100"))
DEAD_LETTER_PAUSE_SECONDS = float(os.environ.get("DEAD_LETTER_PAUSE_SECONDS", "30"))
# A transient database error (locked, deadlock, serialization failure, connection
# lost, WriteConflict) is never a reason to dead-letter: the consumer retries with
# exponential backoff (first wait, longest wait, total waited), then pauses and
# comes back to the same uncommitted messages.
CONSUMER_TRANSIENT_BACKOFF_SECONDS = float(os.environ.get("CONSUMER_TRANSIENT_BACKOFF_SECONDS", "0.1"))
CONSUMER_TRANSIENT_BACKOFF_MAX_SECONDS = float(os.environ.get("CONSUMER_TRANSIENT_BACKOFF_MAX_SECONDS", "5"))
CONSUMER_TRANSIENT_RETRY_SECONDS = float(os.environ.get("CONSUMER_TRANSIENT_RETRY_SECONDS", "30"))
CONSUMER_TRANSIENT_PAUSE_SECONDS = float(os.environ.get("CONSUMER_TRANSIENT_PAUSE_SECONDS", "10"))

# --- Redis: Celery broker and Channels layer ----------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
OUTBOX_SWEEP_SECONDS = float(os.environ.get("OUTBOX_SWEEP_SECONDS", "2"))
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
OUTBOX_RETENTION_HOURS = float(os.environ.get("OUTBOX_RETENTION_HOURS", "72"))
# processed_events must outlive the broker's retention: a message still on a topic
# can be delivered again (group offset reset, rewind, replay), and without its row
# it would be applied twice. Kafka keeps messages 7 days by default
# (log.retention.hours=168); twice that (14 days) leaves room for a consumer that
# lagged or a rewind near the end of that window. Raise it with the topics' retention.
PROCESSED_EVENTS_RETENTION_HOURS = float(os.environ.get("PROCESSED_EVENTS_RETENTION_HOURS", "336"))
RETENTION_PURGE_BATCH = int(os.environ.get("RETENTION_PURGE_BATCH", "1000"))
RETENTION_PURGE_SECONDS = float(os.environ.get("RETENTION_PURGE_SECONDS", "3600"))
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
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
# Loggers that repeat themselves at INFO without telling an operator anything
# (a line per task run, per beat tick); their warnings still come through.
_QUIET_AT_INFO = ["celery.app.trace", "celery.worker.strategy", "celery.beat", "django.db.backends"]
# Per-logger levels on top of LOG_LEVEL, "logger=LEVEL,...": e.g. one line per consumed
# event (at DEBUG, off the hot path) with LOG_LEVELS=shopsite.events.consumer=DEBUG.
LOG_LEVELS: dict[str, str] = {
    name.strip(): level.strip().upper()
    for name, _, level in (part.partition("=") for part in os.environ.get("LOG_LEVELS", "").split(","))
    if name.strip() and level.strip()
}
_LEVEL_NO = logging.getLevelName(LOG_LEVEL)
_QUIET_LEVEL = logging.getLevelName(max(_LEVEL_NO if isinstance(_LEVEL_NO, int) else logging.INFO, logging.WARNING))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shopsite.jsonlog.JsonFormatter"}},
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
    },
}
for _name, _level in LOG_LEVELS.items():
    LOGGING["loggers"][_name] = {**LOGGING["loggers"].get(_name, {}), "level": _level}

# --- Saga policy ---------------------------------------------------------------
# Off by default, as in the seed where operators trigger compensation from the
# dashboard. When on: PaymentFailed releases the stock; ShippingFailed refunds
# the payment and releases the stock.
AUTO_COMPENSATION = os.environ.get("SHOPSITE_AUTO_COMPENSATION", "0") == "1"

# --- Live dashboard ---------------------------------------------------------------
SSE_HEARTBEAT_SECONDS = float(os.environ.get("SSE_HEARTBEAT_SECONDS", "15"))
# Per web process: open streams per user and in all; beyond either, 503 with Retry-After.
SSE_MAX_STREAMS_PER_USER = int(os.environ.get("SSE_MAX_STREAMS_PER_USER", "20"))
SSE_MAX_STREAMS = int(os.environ.get("SSE_MAX_STREAMS", "500"))
# A stream ends after this long; the browser reconnects with Last-Event-ID and misses nothing.
SSE_MAX_AGE_SECONDS = float(os.environ.get("SSE_MAX_AGE_SECONDS", "300"))
# Threads for the streams' database reads, apart from the one thread of sync views.
SSE_DB_THREADS = int(os.environ.get("SSE_DB_THREADS", "8"))
# How long a web process lets requests in flight finish on SIGTERM (shopsite/web.py).
WEB_DRAIN_SECONDS = float(os.environ.get("SHOPSITE_DRAIN_SECONDS", "10"))
