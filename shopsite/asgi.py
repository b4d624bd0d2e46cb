import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")

django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does, with our handlers below

# Imported after Django is set up: consumers import models.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from readmodel.streams import OrderListStream, TimelineHtmlStream, TimelineStream  # noqa: E402
from shopsite.asgi_handlers import AsyncViewHandler, Handler, async_view_routes  # noqa: E402
from shopsite.bodylimit import BodyLimit  # noqa: E402
from shopsite.services import BY_NAME, SERVICES  # noqa: E402

django_asgi_app = Handler()
_served = {s.name for s in settings.SERVED_SERVICES}


def _order_exists(order_id: str) -> bool:
    """The order service's word on an order the read model has not projected yet."""
    from orders.models import Order

    return Order.objects.using(BY_NAME["orders"].alias).filter(pk=order_id).exists()


_order_known = _order_exists if "orders" in _served else None
if "orders" in _served:
    from orders.application import start_order_writer  # noqa: E402

    # This process's concurrent POST /api/orders share transactions (orders/writer.py).
    start_order_writer()
streams = []
if "readmodel" in _served:
    streams.append(path("api/read/orders/<str:order_id>/stream", TimelineStream.as_asgi(order_known=_order_known)))
if len(_served) == len(SERVICES):  # the dashboard's own streams, like its pages (shopsite/urls.py)
    streams += [
        path("live/orders/<str:order_id>", TimelineHtmlStream.as_asgi(order_known=_order_known)),
        path("live/orders", OrderListStream.as_asgi()),
    ]

application = ProtocolTypeRouter({
    # Bodies over the limit are refused while they arrive, before Django spools them to disk.
    "http": BodyLimit(URLRouter([
        *streams,
        # Async views (POST /api/orders, the health probes): no thread started per request.
        *async_view_routes(AsyncViewHandler()),
        # Static files (htmx, admin CSS) straight from the installed apps: one process to run.
        # Behind a real proxy/CDN, serve `collectstatic` output there instead.
        re_path(r"", ASGIStaticFilesHandler(django_asgi_app)),
    ]), settings.REQUEST_BODY_MAX_BYTES),
})
