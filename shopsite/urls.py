"""URLs, grouped by the service that owns them.

A process serves the groups of settings.SERVED_SERVICES: all of them by
default, one when it runs as a single service (SHOPSITE_SERVICE=orders).
/health and /metrics are served by every process; the dashboard and the
admin only by the all-in-one process, since they read and act on every
service's tables. The SSE streams are routed in shopsite/asgi.py.
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, path

import inventory.views
import orders.views
import payment.views
import readmodel.views
import shipping.views
from shopsite.api import views as api_views
from shopsite.dashboard import views as dashboard
from shopsite.ops import signin
from shopsite.ops import views as ops_views
from shopsite.services import SERVICES

COMMON: list[URLPattern | URLResolver] = [
    path("health", ops_views.health, name="health"),
    path("health/live", ops_views.live, name="health-live"),
    path("health/ready", ops_views.ready, name="health-ready"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("api/schema", api_views.schema, name="api-schema"),
    path("api/docs", api_views.docs, name="api-docs"),
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
        # query side
        path("api/read/orders", readmodel.views.order_list, name="read-order-list"),
        path("api/read/orders/<str:order_id>", readmodel.views.order_detail, name="read-order-detail"),
        path("api/ops/dlq", readmodel.views.dead_letter_list, name="ops-dlq"),
        path("api/ops/dlq/<str:letter_id>/replay", readmodel.views.dead_letter_replay, name="ops-dlq-replay"),
    ],
}
assert set(BY_SERVICE) == {s.name for s in SERVICES}, "every service needs its URL group"

# The operations dashboard (server-rendered, htmx, live over SSE).
DASHBOARD: list[URLPattern | URLResolver] = [
    path("", dashboard.order_list, name="dashboard"),
    path("overview", dashboard.overview_panel, name="overview"),
    path("charts", dashboard.charts_panel, name="charts"),
    path("orders/new", dashboard.new_order, name="new-order"),
    path("orders/create", dashboard.create_order, name="create-order-form"),
    path("orders/<str:order_id>", dashboard.order_page, name="order-page"),
    path("orders/<str:order_id>/panel", dashboard.order_panel, name="order-panel"),
    path("orders/<str:order_id>/saga", dashboard.order_saga, name="order-saga"),
    path("orders/<str:order_id>/<str:kind>/<str:value>", dashboard.order_action, name="order-action"),
    path("controls", dashboard.controls, name="controls"),
    path("controls/stock/<str:sku>", dashboard.set_stock, name="controls-stock"),
    path("controls/payment", dashboard.set_payment_simulator, name="controls-payment"),
    path("controls/shipping", dashboard.set_shipping_simulator, name="controls-shipping"),
    path("dlq", dashboard.dead_letters, name="dlq"),
    path("dlq/<str:letter_id>/replay", dashboard.replay_dead_letter, name="dlq-replay"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/link/<str:token>/", signin.sign_in_with_link, name="sign-in-link"),
    path("admin/", admin.site.urls),
]

_served = [s.name for s in settings.SERVED_SERVICES]
urlpatterns: list[URLPattern | URLResolver] = list(COMMON)
if len(_served) == len(SERVICES):
    urlpatterns += DASHBOARD
for _name in _served:
    urlpatterns += BY_SERVICE[_name]
