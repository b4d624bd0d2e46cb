from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from shopsite.databases import ALL_ALIASES, MONGO_BACKENDS

TESTS = Path(__file__).resolve().parent

# What `make test` runs on every database backend (tests/run_backends.py selects
# `-m backends`): the handler, outbox, idempotency and projection tests, the
# relay against a real broker, the backend tests, and the e2e happy path.
BACKEND_SUITES = ("handlers", "unit", "backends", "integration/test_relay.py")
BACKEND_E2E_KEYWORD = "happy"


@pytest.fixture(autouse=True, scope="session")
def _celery_messages_stay_in_process():
    """Publish-after-commit callbacks run for real wherever a test commits (transactional
    tests, and every test on MongoDB): keep their Celery messages in this process instead
    of queueing them on the machine's Redis, where a running `make run` would pick them up.
    The e2e stack's processes get their own Redis from the environment, unaffected."""
    from shopsite.celery import app

    app.conf.broker_url = "memory://"
    yield


@pytest.fixture
def all_dbs(db, django_db_blocker):  # noqa: ARG001 - `db` enables DB access
    return ALL_ALIASES


def _in_backend_suite(item: pytest.Item) -> bool:
    relative = Path(str(item.path)).resolve().relative_to(TESTS).as_posix()
    if any(relative == suite or relative.startswith(f"{suite}/") for suite in BACKEND_SUITES):
        return True
    return relative.startswith("e2e/") and BACKEND_E2E_KEYWORD in item.name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = settings.SHOPSITE_DB
    on_mongo = backend in MONGO_BACKENDS
    selected, deselected = [], []
    for item in items:
        only = item.get_closest_marker("backend")
        if only is not None and backend not in only.args:
            deselected.append(item)  # reported as deselected: visible, never a silent skip
            continue
        selected.append(item)
        if _in_backend_suite(item):
            item.add_marker(pytest.mark.backends)
        # Tests marked django_db get every service database, since services never share one.
        # On MongoDB tests cannot run inside a rolled-back transaction, so pytest-django
        # empties the databases after each test; serialized_rollback puts the migrations'
        # data (the seeded stock) back before the next one, as on SQL backends.
        marker = item.get_closest_marker("django_db")
        if marker is None:
            continue
        kwargs = dict(marker.kwargs)
        kwargs.setdefault("databases", "__all__")
        if on_mongo:
            kwargs.setdefault("serialized_rollback", True)
        if kwargs != marker.kwargs:
            item.add_marker(pytest.mark.django_db(*marker.args, **kwargs), append=False)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_report_header(config: pytest.Config) -> str:
    return f"shopsite database backend: SHOPSITE_DB={settings.SHOPSITE_DB}"


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):  # noqa: F811 - pytest-django's settings fixture
    """In-process tests push live updates to an in-memory layer, not to whatever Redis runs here."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def _dashboard_history_in_process(monkeypatch):
    """In-process tests that render the dashboard keep its chart samples in the process,
    never on whatever Redis runs on this machine (port 9, discard, refuses at once)."""
    from shopsite.dashboard import pulse

    monkeypatch.setattr(pulse, "_history", pulse.History("redis://127.0.0.1:9/0"))
