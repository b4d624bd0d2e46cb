"""URLs, grouped by the service that owns them.

A process serves the groups of settings.SERVED_SERVICES: all of them by
default, one when it runs as a single service (SHOPSITE_SERVICE=orders).
/health and /metrics are served by every process; the admin only by the
all-in-one process, since it edits every service's tables.
"""

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

import inventory.views
import orders.views
import payment.views
import readmodel.views
import shipping.views
from readmodel import pages
from shopsite.ops import views as ops_views
from shopsite.services import SERVICES

COMMON: list[URLPattern | URLResolver] = [
    path("health", ops_views.health, name="health"),
    path("metrics", ops_views.metrics, name="metrics"),
]

BY_SERVICE: dict[str, list[URLPattern | URLResolver]] = {
    "orders": [
        # command side
        path("api/orders", orders.views.create_order, name="create-order"),
        path("api/orders/<str:order_id>", orders.views.order_detail, name="order-detail"),
        path("api/ops/orders/<str:order_id>/retry", orders.views.retry_step, name="ops-retry"),
        path("api/ops/orders/<str:order_id>/compensate", orders.views.compensate, name="ops-compensate"),
    ],
    "inventory": [
        path("api/ops/inventory", inventory.views.stock_list, name="ops-stock"),
        path("api/ops/inventory/<str:sku>", inventory.views.stock_detail, name="ops-stock-sku"),
        path("api/ops/reservations/<str:order_id>", inventory.views.reservation_detail, name="ops-reservation"),
    ],
    "payment": [
        path("api/ops/payments/<str:order_id>", payment.views.payment_detail, name="ops-payment"),
        path("api/ops/simulators/payment", payment.views.simulator, name="ops-sim-payment"),
    ],
    "shipping": [
        path("api/ops/shipments/<str:order_id>", shipping.views.shipment_detail, name="ops-shipment"),
        path("api/ops/simulators/shipping", shipping.views.simulator, name="ops-sim-shipping"),
    ],
    "readmodel": [
        # query side and the dashboard
        path("", pages.order_list, name="dashboard"),
        path("orders/<str:order_id>", pages.order_page, name="order-page"),
        path("api/read/orders", readmodel.views.order_list, name="read-order-list"),
        path("api/read/orders/<str:order_id>", readmodel.views.order_detail, name="read-order-detail"),
        path("api/ops/dlq", readmodel.views.dead_letter_list, name="ops-dlq"),
        path("api/ops/dlq/<str:letter_id>/replay", readmodel.views.dead_letter_replay, name="ops-dlq-replay"),
    ],
}
assert set(BY_SERVICE) == {s.name for s in SERVICES}, "every service needs its URL group"

_served = [s.name for s in settings.SERVED_SERVICES]
urlpatterns: list[URLPattern | URLResolver] = list(COMMON)
if len(_served) == len(SERVICES):
    urlpatterns.append(path("admin/", admin.site.urls))
for _name in _served:
    urlpatterns += BY_SERVICE[_name]
