"""Every REST endpoint, declared once for the schema, grouped by the service that serves it.

The request models are the ones the views validate with, from each service's
application layer; a test checks that this catalogue
and the URL configuration name the same routes, so the schema cannot drift
from what the server answers.
"""

from __future__ import annotations

import inventory.application
import inventory.views
import orders.application
import orders.views
import payment.application
import payment.views
import readmodel.application
import readmodel.views
import shipping.application
import shipping.views
from orders import lifecycle
from shopsite.api import documents as doc
from shopsite.api.openapi import Endpoint, Param

E = doc.ErrorBody
UNAUTHORISED = {401: (E, "no credentials, or a token that is unknown, expired or revoked")}
FORBIDDEN = {403: (E, "signed in, but not allowed to do this")}
READ = {**UNAUTHORISED, **FORBIDDEN}
ACT = {**UNAUTHORISED, **FORBIDDEN}
NOT_FOUND = {404: (E, "no such resource")}
BAD = {400: (E, "invalid body or parameters; `details` names the fields")}

ORDER_EXAMPLE = {"items": [{"sku": "SKU-1", "qty": 2}], "total": 20}

ORDERS = [
    Endpoint("POST", "/api/orders", "placeOrder", "Place an order", "orders", "place_orders",
             {201: (doc.OrderAccepted, "order accepted; OrderCreated is on its way"), **BAD, **ACT,
              422: (E, "Idempotency-Key already used with a different body")},
             body=orders.application.PlaceOrderRequest, body_example=ORDER_EXAMPLE,
             params=[Param("Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": 200},
                           "same key and same body: the same order, never a second one")]),
    Endpoint("GET", "/api/orders/{orderId}", "getOrder", "The order document (command side)", "orders", "viewer",
             {200: (doc.OrderDocument, "the order"), **BAD, **READ, **NOT_FOUND},
             params=[Param("at", "query", {"type": "string", "format": "date-time"},
                           "rebuild the order from its history as of this instant (ISO 8601)")]),
    Endpoint("POST", "/api/ops/orders/{orderId}/retry", "retryStep", "Ask the step's owner to retry it", "operations",
             "operator", {202: (doc.RequestAccepted, "ops.RetryRequested.v1 published"), **BAD, **ACT, **NOT_FOUND,
                          409: (E, "refused by the order service: it could race a compensation already requested")},
             body=orders.application.RetryBody, body_example={"step": "payment"}),
    Endpoint("POST", "/api/ops/orders/{orderId}/compensate", "compensate", "Ask for a compensation", "operations",
             "operator", {202: (doc.RequestAccepted, "ops.CompensationRequested.v1 published"), **BAD, **ACT,
                          **NOT_FOUND,
                          409: (E, "refused by the order service: shipping may still ship the order, or a retry "
                                   "is outstanding")},
             body=orders.application.CompensateBody, body_example={"action": "refundPayment"}),
]

INVENTORY = [
    Endpoint("GET", "/api/ops/inventory", "listStock", "Stock per SKU", "inventory", "operator",
             {200: (doc.StockList, "every SKU"), **ACT}),
    Endpoint("PUT", "/api/ops/inventory/{sku}", "setStock", "Set the units available (restock)", "inventory",
             "operator", {200: (doc.StockRow, "the SKU after the change"), **BAD, **ACT},
             body=inventory.application.SetStock, body_example={"available": 1000},
             description="Reserved units are untouched."),
    Endpoint("GET", "/api/ops/reservations/{orderId}", "getReservation", "An order's reservation", "inventory",
             "operator", {200: (doc.ReservationDocument, "the reservation"), **ACT, **NOT_FOUND}),
]

PAYMENT = [
    Endpoint("GET", "/api/ops/payments/{orderId}", "getPayment", "An order's payment", "payment", "operator",
             {200: (doc.PaymentDocument, "the payment"), **ACT, **NOT_FOUND}),
    Endpoint("GET", "/api/ops/simulators/payment", "getPaymentSimulator", "The payment simulator", "payment",
             "operator", {200: (doc.PaymentSimulatorDocument, "its settings"), **ACT}),
    Endpoint("PUT", "/api/ops/simulators/payment", "setPaymentSimulator", "Configure the payment simulator",
             "payment", "operator", {200: (doc.PaymentSimulatorDocument, "its settings"), **BAD, **ACT},
             body=payment.application.SimulatorBody, body_example={"declineAbove": 500, "failureRate": 0}),
]

SHIPPING = [
    Endpoint("GET", "/api/ops/shipments/{orderId}", "getShipment", "An order's shipment", "shipping", "operator",
             {200: (doc.ShipmentDocument, "the shipment"), **ACT, **NOT_FOUND}),
    Endpoint("GET", "/api/ops/simulators/shipping", "getShippingSimulator", "The shipping simulator", "shipping",
             "operator", {200: (doc.ShippingSimulatorDocument, "its settings"), **ACT}),
    Endpoint("PUT", "/api/ops/simulators/shipping", "setShippingSimulator", "Configure the shipping simulator",
             "shipping", "operator", {200: (doc.ShippingSimulatorDocument, "its settings"), **BAD, **ACT},
             body=shipping.application.SimulatorBody, body_example={"outage": False, "failureRate": 0}),
]

READMODEL = [
    Endpoint("GET", "/api/read/orders", "listOrders", "Orders from the read model, newest first", "read model",
             "viewer", {200: (doc.ProjectionPage, "a page of projections"), **BAD, **READ},
             params=[Param("status", "query", {"type": "string", "enum": list(lifecycle.STATUSES)}),
                     Param("limit", "query", {"type": "integer", "minimum": 1,
                                              "maximum": readmodel.views.MAX_LIMIT}),
                     Param("cursor", "query", {"type": "string"}, "the `next` of the previous page")]),
    Endpoint("GET", "/api/read/orders/{orderId}", "getProjection", "An order's projection and timeline",
             "read model", "viewer", {200: (doc.Projection, "the projection"), **READ, **NOT_FOUND}),
    Endpoint("GET", "/api/ops/dlq", "listDeadLetters", "Dead letters, newest first", "dead letters", "operator",
             {200: (doc.DeadLetterList, "dead letters"), **BAD, **ACT},
             params=[Param("status", "query", {"type": "string"}),
                     Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500})]),
    Endpoint("POST", "/api/ops/dlq/{letterId}/replay", "replayDeadLetter", "Publish a dead letter's event again",
             "dead letters", "operator",
             {202: (doc.ReplayAccepted, "re-published to its topic"), **BAD, **ACT, **NOT_FOUND,
              409: (E, "replay refused (limit reached, or the corrected event is invalid)")},
             body=readmodel.application.ReplayBody, body_required=False,
             description="An empty body replays the original; `event` may correct the payload only."),
]

HEALTH_ANSWERS = {200: (doc.Health, "every check passed"),
                  503: (doc.Health, "a check failed; `failing` names it (error text for signed-in callers only)")}
COMMON = [
    Endpoint("GET", "/health", "health", "Dependencies: databases, broker, Redis", "health", "public", HEALTH_ANSWERS),
    Endpoint("GET", "/health/ready", "ready", "Ready to take orders: dependencies and consumers assigned", "health",
             "public", HEALTH_ANSWERS),
    Endpoint("GET", "/health/live", "live", "The process answers (no dependency checked)", "health", "public",
             {200: (doc.Live, "alive")}),
]

BY_SERVICE: dict[str, list[Endpoint]] = {
    "orders": ORDERS, "inventory": INVENTORY, "payment": PAYMENT, "shipping": SHIPPING, "readmodel": READMODEL,
}


def endpoints(service_names: list[str]) -> list[Endpoint]:
    return [*COMMON, *(ep for name in service_names for ep in BY_SERVICE[name])]
