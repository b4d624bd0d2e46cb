"""Who may do what: three permissions, three groups (created by migration ops 0002).

Viewers read (pages, the read API, order documents, live streams); operators
also act (retry, compensate, replay, stock, simulators) and place orders from
the dashboard; a storefront (or any service placing orders) only places orders.
"""

from __future__ import annotations

VIEW = "ops.view_orders"
OPERATE = "ops.operate"
PLACE_ORDERS = "ops.place_orders"

# (codename, description), declared on ApiToken.Meta.permissions.
DECLARED = [
    ("view_orders", "Can see orders, timelines, dead letters and live streams"),
    ("operate", "Can act: retry, compensate, replay, stock, simulators"),
    ("place_orders", "Can place orders"),
]

VIEWERS, OPERATORS, STOREFRONT = "viewers", "operators", "storefront"
GROUPS: dict[str, list[str]] = {
    VIEWERS: [VIEW],
    OPERATORS: [VIEW, OPERATE, PLACE_ORDERS, "ops.view_apitoken"],
    STOREFRONT: [PLACE_ORDERS],
}
