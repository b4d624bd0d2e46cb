"""Settings for every shopsite process (daphne, celery worker, beat, tests).

Everything that differs between a laptop and production comes from the
environment; defaults are the embedded ones that `make run` provides.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from shopsite import databases
from shopsite.services import served_services


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SHOPSITE_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-secret-change-me-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
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
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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

# --- Redis: Celery broker and Channels layer ----------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
OUTBOX_SWEEP_SECONDS = float(os.environ.get("OUTBOX_SWEEP_SECONDS", "2"))
# Relay loops (one per served outbox in each worker) are woken after every commit
# (shopsite/events/outbox_signal.py); this poll only covers a lost wake-up.
OUTBOX_RELAY_POLL_SECONDS = float(os.environ.get("OUTBOX_RELAY_POLL_SECONDS", "1"))
OUTBOX_RELAY_BATCH = int(os.environ.get("OUTBOX_RELAY_BATCH", "1000"))
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

# --- Saga policy ---------------------------------------------------------------
# Off by default, as in the seed where operators trigger compensation from the
# dashboard. When on: PaymentFailed releases the stock; ShippingFailed refunds
# the payment and releases the stock.
AUTO_COMPENSATION = os.environ.get("SHOPSITE_AUTO_COMPENSATION", "0") == "1"

# --- Live dashboard ---------------------------------------------------------------
SSE_HEARTBEAT_SECONDS = float(os.environ.get("SSE_HEARTBEAT_SECONDS", "15"))
