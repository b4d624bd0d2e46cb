from __future__ import annotations

from django.apps import AppConfig


class MongomockShimConfig(AppConfig):
    """Installed by settings.py only when SHOPSITE_DB=mongomock.

    ready() runs after the app registry is loaded and before any database
    connection, the one moment the backend module can be patched safely.
    """

    name = "shopsite.testing"
    label = "shopsite_testing"
    verbose_name = "mongomock test shim"

    def ready(self) -> None:
        from shopsite.testing import mongomock_shim

        mongomock_shim.install()
