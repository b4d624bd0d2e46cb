"""Who may do what, through Django's test client on the real databases (every backend)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from inventory.models import Stock
from orders.commands import place_order
from shopsite.ops import tokens
from shopsite.ops.models import ApiToken
from shopsite.ops.permissions import OPERATE, PLACE_ORDERS, STOREFRONT, VIEW
from shopsite.ops.roles import ensure_user

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

ORDER = json.dumps({"items": [{"sku": "SKU-1", "qty": 1}], "total": 5})


def with_token(plaintext: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {plaintext}"})


def place(client: Client, **kwargs):
    return client.post("/api/orders", data=ORDER, content_type="application/json", **kwargs)


def test_anonymous_callers_are_refused_everywhere_but_health_and_login(anonymous):
    order_id = place_order([{"sku": "SKU-1", "qty": 1}], 3).order.order_id
    for url in ["/api/read/orders", f"/api/read/orders/{order_id}", f"/api/orders/{order_id}", "/api/ops/dlq",
                "/api/ops/inventory"]:
        response = anonymous.get(url)
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer"), url
    assert place(anonymous).status_code == 401
    assert anonymous.get("/health").status_code in (200, 503)
    assert anonymous.get("/accounts/login/").status_code == 200


def test_roles_decide_reading_acting_and_placing(anonymous, viewer_user, operator_user):
    order_id = place_order([{"sku": "SKU-1", "qty": 1}], 3).order.order_id
    viewer = with_token(tokens.issue(viewer_user).plaintext)
    assert viewer.get(f"/api/orders/{order_id}").status_code == 200
    assert viewer.get("/api/read/orders").status_code == 200
    assert place(viewer).status_code == 403
    retry = viewer.post(f"/api/ops/orders/{order_id}/retry", data=json.dumps({"step": "payment"}),
                        content_type="application/json")
    assert retry.status_code == 403

    storefront_user = get_user_model().objects.db_manager("default").create_user("shop")
    storefront_user.groups.add(Group.objects.using("default").get(name=STOREFRONT))
    storefront = with_token(tokens.issue(storefront_user).plaintext)
    assert place(storefront).status_code == 201
    assert storefront.get(f"/api/orders/{order_id}").status_code == 403

    # A token narrowed to placing orders cannot act, though its user could.
    narrow = with_token(tokens.issue(operator_user, scopes=[PLACE_ORDERS]).plaintext)
    assert place(narrow).status_code == 201
    assert narrow.get("/api/read/orders").status_code == 403
    assert operator_user.has_perm(OPERATE) and operator_user.has_perm(VIEW)


def test_forged_expired_revoked_and_orphaned_tokens_get_401(operator_user, settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    good = tokens.issue(operator_user)
    assert place(with_token(good.plaintext)).status_code == 201
    forged = good.plaintext[:-4] + ("AAAA" if not good.plaintext.endswith("AAAA") else "BBBB")
    for credential in ["not-a-token", "shs_" + "0" * 60, forged]:
        assert place(with_token(credential)).status_code == 401, credential

    expired = tokens.issue(operator_user, expires_in=timedelta(seconds=-1))
    assert place(with_token(expired.plaintext)).status_code == 401

    revoked = tokens.issue(operator_user)
    call_command("api_tokens", "revoke", revoked.token.id)
    assert place(with_token(revoked.plaintext)).status_code == 401

    # Stored hashed: the database never holds the secret half.
    row = ApiToken.objects.using("default").get(pk=good.token.id)
    assert good.plaintext[len(tokens.PREFIX) + tokens.ID_CHARS:] not in row.digest


def test_revocation_beats_the_cache_in_the_revoking_process(operator_user, settings):
    settings.API_TOKEN_CACHE_SECONDS = 60
    issued = tokens.issue(operator_user)
    client = with_token(issued.plaintext)
    assert place(client).status_code == 201
    tokens.revoke([issued.token.id])
    assert place(client).status_code == 401


def test_a_password_change_ends_tokens_unless_issued_to_outlive_it(operator_user):
    ordinary = tokens.issue(operator_user)
    service = tokens.issue(operator_user, outlives_password=True)
    operator_user.set_password("a new long passphrase 42")
    operator_user.save(using="default")
    assert place(with_token(ordinary.plaintext)).status_code == 401
    assert place(with_token(service.plaintext)).status_code == 201


def test_deactivating_a_user_revokes_their_tokens_at_once(operator_user, settings):
    settings.API_TOKEN_CACHE_SECONDS = 60
    issued = tokens.issue(operator_user, outlives_password=True)
    assert place(with_token(issued.plaintext)).status_code == 201
    operator_user.is_active = False
    operator_user.save(using="default")
    assert place(with_token(issued.plaintext)).status_code == 401
    assert ApiToken.objects.using("default").get(pk=issued.token.id).revoked_at is not None
    operator_user.is_active = True
    operator_user.save(using="default")
    assert place(with_token(issued.plaintext)).status_code == 401  # revoked for good


def test_last_used_is_written_at_most_once_a_minute(operator_user, settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    issued = tokens.issue(operator_user)
    client = with_token(issued.plaintext)
    client.get("/api/read/orders")
    first = ApiToken.objects.using("default").get(pk=issued.token.id).last_used_at
    assert first is not None
    client.get("/api/read/orders")
    assert ApiToken.objects.using("default").get(pk=issued.token.id).last_used_at == first


def test_issue_ops_token_prints_a_token_with_every_permission_of_the_user(capsys):
    call_command("issue_ops_token", "fresh-operator")
    plaintext = capsys.readouterr().out.strip().splitlines()[-1]
    identity = tokens.authenticate(plaintext)
    assert identity is not None and identity.user.username == "fresh-operator"
    assert {VIEW, OPERATE, PLACE_ORDERS} <= identity.permissions
    call_command("api_tokens", "list", "fresh-operator")
    listing = capsys.readouterr().out
    assert identity.token_id in listing and plaintext not in listing


def test_session_api_calls_need_the_csrf_token_bearer_calls_do_not(operator_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator_user)
    assert place(browser).status_code == 403  # signed-in session, no CSRF token
    browser.get("/")  # the dashboard sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    assert place(browser, headers={"X-CSRFToken": token}).status_code == 201
    bearer = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {tokens.issue(operator_user).plaintext}"})
    assert place(bearer).status_code == 201


def test_an_empty_replay_from_a_session_needs_the_csrf_token(operator_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator_user)
    assert browser.post("/api/ops/dlq/anything/replay").status_code == 403
    assert browser.post("/dlq/anything/replay").status_code == 403


def test_a_sign_in_link_works_once(anonymous, capsys):
    call_command("bootstrap_operator", "--username", "local-op", "--base-url", "http://testserver")
    url = capsys.readouterr().out.strip().split(": ", 1)[1]
    path = url.removeprefix("http://testserver")
    browser = Client()
    assert browser.get(path).status_code == 302
    assert browser.get("/").status_code == 200  # signed in
    assert Client().get(path).status_code == 400  # used
    assert anonymous.get(path[:-3] + "xyz/").status_code == 400  # forged


def test_admin_keeps_the_outbox_and_processed_events_and_sets_stock_through_the_service(operator_user):
    superuser = get_user_model().objects.db_manager("default").create_superuser("root", password="x" * 20)
    admin = Client()
    admin.force_login(superuser)
    from orders.models import Outbox

    place_order([{"sku": "SKU-1", "qty": 1}], 3)
    row = Outbox.objects.using("order_service").first()
    assert admin.get(f"/admin/orders/outbox/{row.pk}/delete/").status_code == 403
    assert admin.post("/admin/orders/outbox/", {"action": "delete_selected", "_selected_action": [row.pk]}
                      ).status_code in (200, 302)
    assert Outbox.objects.using("order_service").filter(pk=row.pk).exists()
    assert admin.get("/admin/orders/processedeventrecord/").status_code == 200

    Stock.objects.using("inventory_service").filter(sku="SKU-2").update(reserved=7)
    # The form was rendered when reserved was 0; saving it must not write reserved back.
    response = admin.post("/admin/inventory/stock/SKU-2/change/", {"available": "50", "reserved": "0"})
    assert response.status_code == 302, response.content[:500]
    stock = Stock.objects.using("inventory_service").get(sku="SKU-2")
    assert (stock.available, stock.reserved) == (50, 7)


def test_tokens_are_issued_once_and_revoked_in_the_admin(operator_user):
    superuser = get_user_model().objects.db_manager("default").create_superuser("root2", password="y" * 20)
    admin = Client()
    admin.force_login(superuser)
    added = admin.post("/admin/ops/apitoken/add/", {"user": str(operator_user.pk), "name": "shop",
                                                    "scopes_text": PLACE_ORDERS, "days": "30"}, follow=True)
    assert added.status_code == 200
    shown = [str(m) for m in added.context["messages"]]
    plaintext = next(word for m in shown for word in m.split() if word.startswith(tokens.PREFIX))
    row = ApiToken.objects.using("default").get(name="shop")
    assert row.scopes == [PLACE_ORDERS] and row.expires_at is not None
    assert plaintext not in admin.get(f"/admin/ops/apitoken/{row.pk}/change/").content.decode()
    assert place(with_token(plaintext)).status_code == 201
    admin.post("/admin/ops/apitoken/", {"action": "revoke", "_selected_action": [row.pk]})
    assert place(with_token(plaintext)).status_code == 401


def test_logins_are_throttled_after_repeated_failures(settings):
    password = "the right long passphrase"
    user = ensure_user("guessed", operator=False)[0]
    user.set_password(password)
    user.save(using="default")
    browser = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        wrong = browser.post("/accounts/login/", {"username": "guessed", "password": "wrong guess"})
        assert wrong.status_code in (200, 429)  # the form again, with an error; the last one locks
    locked = browser.post("/accounts/login/", {"username": "guessed", "password": password})
    assert locked.status_code == 429
    assert "_auth_user_id" not in browser.session


def test_admin_sets_simulators_through_the_services_with_the_apis_validation():
    from payment.models import PaymentSimulator
    from shipping.models import ShippingSimulator

    superuser = get_user_model().objects.db_manager("default").create_superuser("root3", password="z" * 20)
    admin = Client()
    admin.force_login(superuser)
    PaymentSimulator.current("payment_service")
    refused = admin.post("/admin/payment/paymentsimulator/default/change/",
                         {"decline_above": "", "failure_rate": "7"})
    assert refused.status_code == 200 and b"less than or equal to 1" in refused.content
    assert PaymentSimulator.current("payment_service").failure_rate == 0.0
    saved = admin.post("/admin/payment/paymentsimulator/default/change/", {"decline_above": "25", "failure_rate": "0.25"})
    assert saved.status_code == 302, saved.content[:500]
    sim = PaymentSimulator.current("payment_service")
    assert (float(sim.decline_above), sim.failure_rate) == (25.0, 0.25)
    ShippingSimulator.current("shipping_service")
    saved = admin.post("/admin/shipping/shippingsimulator/default/change/", {"outage": "on", "failure_rate": "0"})
    assert saved.status_code == 302, saved.content[:500]
    assert ShippingSimulator.current("shipping_service").outage is True


def test_a_new_operator_is_never_stored_with_a_password_its_first_token_would_be_stamped_with():
    # A token is stamped with the password it was issued under. A new user once existed for a
    # moment with an empty password (created, then given an unusable one): a token issued
    # concurrently in that moment was invalid as soon as it was issued.
    from django.db.models.signals import post_save

    User = get_user_model()
    stored: list[str] = []

    def record(sender, instance, **kwargs):  # noqa: ANN001, ARG001 - a signal receiver
        stored.append(instance.password)

    post_save.connect(record, sender=User)
    try:
        ensure_user("newcomer", operator=True)
    finally:
        post_save.disconnect(record, sender=User)
    assert stored and all(p and not User(password=p).has_usable_password() for p in stored), stored
