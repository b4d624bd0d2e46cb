"""Sign-in, tokens, CSRF, stream limits and body limits against the real web server (daphne)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from shopsite.events import topics
from tests.system.e2e.conftest import (STREAM_MAX_AGE, STREAMS_IN_ALL, STREAMS_PER_USER, System, manage,
                                printed_token, wait_for)

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

ORDER = {"items": [{"sku": "SKU-3", "qty": 1}], "total": 4}
MAX_BODY = 2_621_440


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- who may do what ------------------------------------------------------------------

def test_anonymous_callers_get_401_or_the_login_page(system: System):
    order_id = system.place_order(ORDER["items"], ORDER["total"])["orderId"]
    anonymous = system.anonymous
    for path in ("/api/read/orders", f"/api/read/orders/{order_id}", f"/api/orders/{order_id}", "/api/ops/dlq",
                 f"/api/read/orders/{order_id}/stream"):
        response = anonymous.get(path)
        assert response.status_code == 401, (path, response.status_code, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.post("/api/orders", json=ORDER).status_code == 401
    for path in ("/", f"/orders/{order_id}", "/dlq"):
        response = anonymous.get(path)
        assert response.status_code == 302 and response.headers["location"].startswith("/accounts/login/"), path
    assert anonymous.get("/live/orders").status_code == 401
    health = anonymous.get("/health")
    assert health.status_code == 200 and all("error" not in c for c in health.json()["checks"].values())


def test_viewers_read_but_may_not_act_or_place_orders(system: System, viewer_token: str):
    order_id = system.place_order(ORDER["items"], ORDER["total"])["orderId"]
    viewer = bearer(viewer_token)
    assert system.anonymous.get(f"/api/orders/{order_id}", headers=viewer).status_code == 200
    assert system.anonymous.get("/api/read/orders", headers=viewer).status_code == 200
    assert system.anonymous.post("/api/orders", json=ORDER, headers=viewer).status_code == 403
    assert system.anonymous.post(f"/api/ops/orders/{order_id}/retry", json={"step": "payment"},
                                 headers=viewer).status_code == 403


def test_forged_and_revoked_tokens_get_401(system: System):
    token = printed_token(system.stack, "issue_ops_token", "e2e-revoked")
    assert system.anonymous.post("/api/orders", json=ORDER, headers=bearer(token)).status_code == 201
    forged = token[:-6] + ("A" * 6 if not token.endswith("A" * 6) else "B" * 6)
    assert system.anonymous.post("/api/orders", json=ORDER, headers=bearer(forged)).status_code == 401
    token_id = token[4:20]
    done = manage(system.stack, "api_tokens", "revoke", token_id)
    assert done.returncode == 0 and "revoked 1" in done.stdout, done.stderr
    # Other processes may remember a valid token for API_TOKEN_CACHE_SECONDS (5 s), no longer.
    wait_for(lambda: system.anonymous.post("/api/orders", json=ORDER, headers=bearer(token)).status_code == 401,
             timeout=10, what="the revoked token to be refused")


# --- CSRF -----------------------------------------------------------------------------

@contextlib.contextmanager
def signed_in(system: System, username: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.url, timeout=15.0) as browser:
        page = browser.get("/accounts/login/")
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = browser.post("/accounts/login/", data={"username": username, "password": password,
                                                        "csrfmiddlewaretoken": form_token})
        assert answer.status_code == 302, answer.text[:300]
        yield browser


def test_session_calls_to_the_api_need_the_csrf_token(system: System):
    password = "e2e csrf operator passphrase"
    assert manage(system.stack, "create_operator", "e2e-csrf", "--password", password).returncode == 0
    with signed_in(system, "e2e-csrf", password) as browser:
        assert browser.get("/api/read/orders").status_code == 200  # reading needs no CSRF token
        assert browser.post("/api/orders", json=ORDER).status_code == 403
        assert browser.post("/api/ops/dlq/anything/replay").status_code == 403  # empty body: still a write
        csrf = browser.cookies["csrftoken"]
        placed = browser.post("/api/orders", json=ORDER, headers={"X-CSRFToken": csrf})
        assert placed.status_code == 201, placed.text


# --- dead-letter replay ------------------------------------------------------------------

def test_an_edited_replay_may_correct_the_payload_only(system: System):
    order_id = f"e2e-dlq-{uuid.uuid4()}"
    good = {"eventId": str(uuid.uuid4()), "type": topics.ORDER_CREATED, "version": 1,
            "timestamp": "2026-01-01T00:00:00Z", "correlationId": str(uuid.uuid4()), "causationId": None,
            "key": order_id, "payload": {"orderId": order_id, "items": [{"sku": "SKU-3", "qty": 1}], "total": 4},
            "headers": {}}
    broken = {**good, "payload": {**good["payload"], "items": []}}
    system.produce([(topics.ORDER_CREATED, order_id.encode(), json.dumps(broken).encode(), None)])
    letter = wait_for(lambda: next((d for d in system.ops_get("/api/ops/dlq").json()["results"]
                                    if d["orderId"] == order_id), None), what="the dead letter")
    url = f"/api/ops/dlq/{letter['id']}/replay"
    forged = system.http.post(url, json={"event": {**good, "type": topics.PAYMENT_AUTHORIZED}})
    assert forged.status_code == 400 and "type" in forged.json()["details"][0]["message"], forged.text
    other_order = system.http.post(url, json={"event": {**good, "key": "someone-else"}})
    assert other_order.status_code == 400, other_order.text
    fixed = system.http.post(url, json={"event": good})
    assert fixed.status_code == 202, fixed.text
    # The corrected event, under its own eventId, reaches the read model.
    wait_for(lambda: system.projection(order_id).status_code == 200
             and good["eventId"] in [e["eventId"] for e in system.projection(order_id).json()["timeline"]],
             what="the corrected event in the read model")


# --- streams ------------------------------------------------------------------------------

def open_stream(url: str, path: str, headers: dict[str, str]) -> tuple[socket.socket, int, str]:
    """A raw HTTP/1.1 GET kept open; returns the socket, the status and the head."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=15)
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Accept: text/event-stream",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1])
    return sock, status, head.decode("latin-1")


def test_streams_are_capped_per_user_and_in_all(system: System):
    # Tokens first: streams end at their maximum age, so they are opened in one quick go.
    users = -(-STREAMS_IN_ALL // STREAMS_PER_USER)
    tokens = [printed_token(system.stack, "issue_ops_token", f"e2e-streamer-{n}") for n in range(users)]
    holders: list[socket.socket] = []
    try:
        for _ in range(STREAMS_PER_USER):
            sock, status, _head = open_stream(system.url, "/live/orders", bearer(tokens[0]))
            holders.append(sock)
            assert status == 200
        sock, status, head = open_stream(system.url, "/live/orders", bearer(tokens[0]))
        sock.close()
        assert status == 503 and "retry-after:" in head.lower(), head
        # Other users still get streams, until the process-wide cap.
        for token in tokens[1:]:
            for _ in range(min(STREAMS_PER_USER, STREAMS_IN_ALL - len(holders))):
                sock, status, _head = open_stream(system.url, "/live/orders", bearer(token))
                holders.append(sock)
                assert status == 200
        assert len(holders) == STREAMS_IN_ALL
        sock, status, head = open_stream(system.url, "/live/orders", system.ops_headers)
        sock.close()
        assert status == 503 and "retry-after:" in head.lower(), head
    finally:
        for sock in holders:
            sock.close()
    # Closed streams give their places back.
    def reopened() -> bool:
        sock, status, _head = open_stream(system.url, "/live/orders", bearer(tokens[0]))
        sock.close()
        return status == 200

    wait_for(reopened, timeout=20, what="a stream place to be free again")


def test_a_stream_for_an_unknown_order_is_404_and_a_foreign_host_400(system: System):
    response = system.http.get(f"/api/read/orders/no-such-order-{uuid.uuid4()}/stream")
    assert response.status_code == 404
    parts = urlsplit(system.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as raw:
        raw.sendall(("GET /live/orders HTTP/1.1\r\nHost: evil.example\r\n"
                     f"Authorization: {system.ops_headers['Authorization']}\r\n\r\n").encode())
        assert raw.recv(4096).split(b" ", 2)[1] == b"400"


def test_a_stream_ends_at_its_maximum_age_and_resumes_with_last_event_id(system: System):
    order_id = system.place_order(ORDER["items"], ORDER["total"])["orderId"]
    system.wait_shipped(order_id)
    with system.http.stream("GET", f"/api/read/orders/{order_id}/stream", timeout=STREAM_MAX_AGE + 20) as response:
        lines = list(response.iter_lines())  # returns only when the server ends the response
    assert any(line.startswith("id: 4") for line in lines)
    assert ": max age reached, reconnect" in lines
    with system.http.stream("GET", f"/api/read/orders/{order_id}/stream", headers={"Last-Event-ID": "4"},
                            timeout=STREAM_MAX_AGE + 20) as response:
        again = list(response.iter_lines())
    assert not any(line.startswith("id:") for line in again)  # nothing missed, nothing repeated


# --- bodies over the limit ------------------------------------------------------------------

def _web_pids(tmp_dir: Path) -> list[int]:
    """The stack's web server processes: those started with TMPDIR set to this stack's directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"TMPDIR={tmp_dir}".encode() in environ and (b"daphne" in cmdline or b"shopsite.web" in cmdline):
            found.append(int(entry.name))
    return found


def _files_under(pids: list[int], directory: Path) -> list[str]:
    opened = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith(str(directory)):
                        opened.append(target)
    return opened


def _read_status(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_refused_while_it_arrives(system: System, chunked: bool):
    tmp_dir = system.var_dir.parent / "tmp"
    pids = _web_pids(tmp_dir)
    assert pids, f"no web server process runs with TMPDIR={tmp_dir}"
    parts = urlsplit(system.url)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {100 * MAX_BODY}"
    block = b"x" * 65536
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        sock.sendall((f"POST /api/orders HTTP/1.1\r\nHost: {parts.hostname}\r\n"
                      f"Authorization: {system.ops_headers['Authorization']}\r\n"
                      f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode())
        sent = 0
        with contextlib.suppress(OSError):  # the server may close while we still send
            while sent < MAX_BODY + 4 * len(block):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
                assert not _files_under(pids, tmp_dir), "the body is being spooled to a temporary file"
        status = _read_status(sock)
    # Answered long before the 250 MB it announced (or the end of the chunked body) arrived.
    assert status == 413
    assert not _files_under(pids, tmp_dir)
    # A body within the limit still works on a fresh connection.
    assert system.http.post("/api/orders", json=ORDER).status_code == 201
