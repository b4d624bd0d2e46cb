from __future__ import annotations

import pytest
from django.conf import settings

from shopsite.databases import ALL_ALIASES, BACKENDS, MONGO_BACKENDS

# Tests live by layer: unit/ (pure logic), service/ (one service or the runtime on a real
# database), integration/ (a real broker, in-process otherwise), system/ (real processes).
# Every test module says which database backends it runs on, e.g.
#     pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")
# and a test may narrow that with its own @pytest.mark.backends(...) (the closest wins).
# Items whose backends leave out SHOPSITE_DB are deselected, never skipped; a module that
# declares nothing is a collection error, so no test is silently left out of a backend.


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


def _declared_backends(item: pytest.Item) -> tuple[str, ...]:
    marker = item.get_closest_marker("backends")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{item.nodeid}: its module declares no backends "
                                f"(pytestmark = pytest.mark.backends(...); see tests/conftest.py)")
    unknown = set(marker.args) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: unknown backends {sorted(unknown)}; known: {list(BACKENDS)}")
    return marker.args


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = settings.SHOPSITE_DB
    on_mongo = backend in MONGO_BACKENDS
    selected, deselected = [], []
    for item in items:
        if backend not in _declared_backends(item):
            deselected.append(item)  # reported as deselected: visible, never a silent skip
            continue
        selected.append(item)
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
