from __future__ import annotations

import pytest

from django.conf import settings

from shopsite.databases import ALL_ALIASES, MONGO_BACKENDS


@pytest.fixture
def all_dbs(db, django_db_blocker):  # noqa: ARG001 - `db` enables DB access
    return ALL_ALIASES


def pytest_collection_modifyitems(items):
    # Tests marked django_db get every service database, since services never share one.
    # On MongoDB tests cannot run inside a rolled-back transaction, so pytest-django
    # empties the databases after each test; serialized_rollback puts the migrations'
    # data (the seeded stock) back before the next one, as on SQL backends.
    on_mongo = settings.SHOPSITE_DB in MONGO_BACKENDS
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None:
            continue
        kwargs = dict(marker.kwargs)
        kwargs.setdefault("databases", "__all__")
        if on_mongo:
            kwargs.setdefault("serialized_rollback", True)
        if kwargs != marker.kwargs:
            item.add_marker(pytest.mark.django_db(*marker.args, **kwargs), append=False)
