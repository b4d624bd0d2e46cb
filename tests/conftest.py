from __future__ import annotations

import pytest

from shopsite.databases import ALL_ALIASES


@pytest.fixture
def all_dbs(db, django_db_blocker):  # noqa: ARG001 - `db` enables DB access
    return ALL_ALIASES


def pytest_collection_modifyitems(items):
    # Tests marked django_db get every service database, since services never share one.
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and "databases" not in marker.kwargs:
            item.add_marker(pytest.mark.django_db(databases="__all__", **marker.kwargs), append=False)


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):
    """In-process tests push live updates to an in-memory layer, not to whatever Redis runs here."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
