"""Settings for the test run: production settings plus a secret key for this run only.

Set in the environment, so that every process a test starts (the e2e stack's
daphne and workers, manage.py subprocesses) inherits the same key.
"""

import hashlib
import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-" + secrets.token_urlsafe(48))

from shopsite.settings import *  # noqa: E402,F403

# In-process tests against a broker use several partitions per topic whatever the backend, as a
# PostgreSQL deployment does: a pause or a rebalance must be right across partitions (SQLite's
# default is one partition per topic, see KAFKA_TOPIC_PARTITIONS).
KAFKA_TOPIC_PARTITIONS = 4

# Test databases on a shared PostgreSQL server carry this checkout's mark: two checkouts' runs at once
# (git worktrees, a CI clone next to a working copy) would otherwise drop each other's test_<name>.
_CHECKOUT = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:6]  # noqa: F405
for _database in DATABASES.values():  # noqa: F405
    if _database["ENGINE"].endswith("postgresql"):
        _database["TEST"] = {**_database.get("TEST", {}), "NAME": f"test_{_CHECKOUT}_{_database['NAME']}"}
