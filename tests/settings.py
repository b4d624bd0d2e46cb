"""Settings for the test run: production settings plus a secret key for this run only.

Set in the environment, so that every process a test starts (the e2e stack's
daphne and workers, manage.py subprocesses) inherits the same key.
"""

import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-" + secrets.token_urlsafe(48))

from shopsite.settings import *  # noqa: E402,F403

# In-process tests against a broker use several partitions per topic whatever the backend, as a
# PostgreSQL deployment does: a pause or a rebalance must be right across partitions (SQLite's
# default is one partition per topic, see KAFKA_TOPIC_PARTITIONS).
KAFKA_TOPIC_PARTITIONS = 4
