"""No input makes a 5xx: deeply nested JSON (API and socket), cursors that are not positions, NUL
characters in query strings and forms, host names that are not names, WebSocket paths we do not
serve; and an API error that does happen is JSON. A consumer that fails leaves the hub."""

import base64
import contextlib
import logging
import socket
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from accounts.models import ApiToken
from channels_integrations.models import EmailAccount
from crm.asgi import application
from messaging import consumers
from messaging.realtime import hub

from .factories import ConversationFactory, EmailAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

DEEP = "[" * 50_000 + "]" * 50_000  # Python's decoder recurses once per level


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.fixture
def member_api(api_for, admin_user):
    return api_for(admin_user)


def test_deeply_nested_json_is_a_400_on_every_kind_of_endpoint(member_api, company):
    conversation = ConversationFactory(company=company)
    for url in (
        "/api/v1/clients/",
        f"/api/v1/conversations/{conversation.pk}/messages/",
        "/api/v1/chats/",
        "/api/v1/whatsapp/broadcasts/",
    ):
        response = member_api.post(url, DEEP, content_type="application/json")
        assert response.status_code == 400, url
        assert "nested deeper" in response.json()["detail"]
    # An honest body with some nesting is read as before.
    response = member_api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        '{"body": "Hello", "extra": [[[{"a": [1, 2]}]]]}',
        content_type="application/json",
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("p=not-a-number"),
        _cursor("p=2026-13-45 99:99"),
        _cursor("p=" + "9" * 40),
        "%%%not-base64",
    ],
)
def test_a_cursor_that_is_not_a_position_is_a_404_on_every_list(member_api, company, cursor):
    conversation = ConversationFactory(company=company)
    for url in (
        "/api/v1/clients/",
        "/api/v1/conversations/",
        f"/api/v1/conversations/{conversation.pk}/messages/",
        "/api/v1/chats/",
        "/api/v1/tokens/",
        "/api/v1/whatsapp/numbers/",
        "/api/v1/whatsapp/bots/",
        "/api/v1/whatsapp/broadcasts/",
    ):
        response = member_api.get(url, {"cursor": cursor})
        # A list ordered by a name takes any text as a position (an empty or a short page);
        # one ordered by an id or a time refuses what is not one: never a server error.
        assert response.status_code in (200, 404), (url, response.status_code)
        if response.status_code == 404:
            assert response.json()["detail"] == "Invalid cursor"
    for url in ("/api/v1/conversations/", f"/api/v1/conversations/{conversation.pk}/messages/"):
        if "not-base64" in cursor or cursor == _cursor("p=not-a-number"):
            assert member_api.get(url, {"cursor": cursor}).status_code == 404, url


def test_a_nul_character_is_refused_naming_the_field(client, member_api, admin_user, company):
    response = member_api.get("/api/v1/conversations/", {"q": "ab\x00c"})
    assert response.status_code == 400 and "NUL" in response.json()["q"][0]
    client.force_login(admin_user)
    for url in ("/inbox/", "/clients/"):
        response = client.get(url, {"q": "\x00"})
        assert response.status_code == 400 and b"q:" in response.content, url
    conversation = ConversationFactory(company=company)
    response = client.post(f"/inbox/{conversation.pk}/reply/", {"body": "hi\x00there"})
    assert response.status_code == 400 and b"body:" in response.content
    assert not conversation.messages.exists()
    # In a JSON body the serializer names the field.
    response = member_api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"body": "a\x00b"}, format="json"
    )
    assert response.status_code == 400 and "body" in response.json()


def test_a_host_that_is_not_a_name_is_a_field_error_and_never_a_500(member_api, company):
    payload = {
        "address": "help@acme.example",
        "imap_host": "bad..host",
        "imap_port": 993,
        "smtp_host": "-smtp.acme.example",
        "smtp_port": 465,
        "smtp_security": "ssl",
        "username": "help@acme.example",
        "password": "secret",
    }
    response = member_api.post("/api/v1/email/accounts/", payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) >= {"imap_host", "smtp_host"}
    assert not EmailAccount.objects.exists()
    for good in ("imap.acme.example", "почта.пример.рф", "127.0.0.1", "::1"):
        response = member_api.post(
            "/api/v1/email/accounts/",
            {**payload, "imap_host": good, "smtp_host": "smtp.acme.example"},
            format="json",
        )
        assert response.status_code == 201, (good, response.json())
        EmailAccount.objects.all().delete()
    # A bad name stored before this check: testing the connection says so in words.
    account = EmailAccountFactory(company=company)
    EmailAccount.objects.filter(pk=account.pk).update(imap_host="bad..host", smtp_host="bad..host")
    response = member_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/")
    assert response.status_code == 200
    assert response.json()["imap"]["ok"] is False and response.json()["smtp"]["ok"] is False


def test_an_api_server_error_is_json(client, admin_user, settings, monkeypatch):
    from messaging import selectors

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "inbox_conversations", broken)
    settings.DEBUG = False
    client.raise_request_exception = False
    client.force_login(admin_user)
    response = client.get("/api/v1/conversations/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json" and "detail" in response.json()


def test_the_api_takes_json_bodies_only(member_api, company):
    """One body type per operation (generated clients break on three): a form or multipart
    body is a 415 in JSON, and nothing is created."""
    for content_type, body in (
        ("application/x-www-form-urlencoded", "name=Form+client"),
        (
            "multipart/form-data; boundary=x",
            '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nForm client\r\n--x--\r\n',
        ),
    ):
        response = member_api.post("/api/v1/clients/", body, content_type=content_type)
        assert response.status_code == 415, content_type
        assert "Unsupported media type" in response.json()["detail"]
    assert not company.clients.exists()
    schema = member_api.get("/api/schema/?format=json").json()
    body_types = {
        (path, method): set(operation.get("requestBody", {}).get("content", {}))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    # One body type per operation: JSON, but for the operations that take files.
    for files in (
        ("/api/v1/conversations/{conversation_pk}/messages/files/", "post"),
        ("/api/v1/clients/import/", "post"),
    ):
        assert body_types.pop(files) == {"multipart/form-data"}, files
    assert all(types == {"application/json"} for types in body_types.values()), body_types


def test_a_path_the_api_does_not_have_is_a_json_404(client, admin_user):
    client.force_login(admin_user)
    for path in ("/api/v1/clients/not-a-number/", "/api/v1/nothing-here/", "/api/v2/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not found."}, path
    # Pages keep their HTML 404.
    assert "text/html" in client.get("/no-such-page/")["Content-Type"]


# ---------------------------------------------------------------- the WebSocket


async def _open(token: str, path: str = "/ws/"):
    communicator = WebsocketCommunicator(application, f"{path}?token={token}")
    connected, _ = await communicator.connect(timeout=5)
    if connected:
        welcome = await communicator.receive_json_from(timeout=5)
        assert welcome["event"] == "welcome"
    return communicator, connected


@pytest.mark.django_db(transaction=True)
def test_odd_frames_are_ignored_and_the_socket_keeps_working(company, caplog):
    user = UserFactory(company=company)
    _token, raw = ApiToken.issue(user, "ws")

    async def run():
        communicator, connected = await _open(raw)
        assert connected
        for frame in (DEEP, "x" * 100_000, "not json", '{"event": ["ping"]}'):
            await communicator.send_to(text_data=frame)
        await communicator.send_to(text_data='{"event": "ping\\ninjected log line"}')
        await communicator.send_to(text_data='{"event": "ping"}')
        assert await communicator.receive_json_from(timeout=5) == {"event": "pong"}
        await communicator.disconnect()

    with caplog.at_level(logging.INFO, logger="messaging.consumers"):
        async_to_sync(run)()
    assert not any("\n" in record.getMessage() for record in caplog.records)
    assert any("ping\\ninjected" in record.getMessage() for record in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_a_path_we_do_not_serve_is_refused_at_the_handshake(company):
    _token, raw = ApiToken.issue(UserFactory(company=company), "ws")

    async def run():
        _communicator, connected = await _open(raw, "/ws/x/")
        assert not connected

    async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
def test_a_consumer_that_fails_closes_its_socket_and_leaves_the_hub(company, monkeypatch):
    user = UserFactory(company=company)
    _token, raw = ApiToken.issue(user, "ws")

    async def explode(self, text_data=None, bytes_data=None):
        raise RuntimeError("a bug while reading a frame")

    async def run():
        communicator, connected = await _open(raw)
        assert connected
        group = f"user.{user.pk}"
        assert len(hub().members.get(group, ())) == 1
        monkeypatch.setattr(consumers.RealtimeConsumer, "receive", explode)
        await communicator.send_to(text_data='{"event": "ping"}')
        closed = await communicator.receive_output(timeout=5)
        assert closed["type"] == "websocket.close" and closed["code"] == 1011
        assert not hub().members.get(group)

    async_to_sync(run)()


# ---------------------------------------------------------------- where admins may point us


def test_mail_hosts_on_private_or_local_addresses_are_refused_in_production(
    member_api, company, settings, django_capture_on_commit_callbacks
):
    """With OUTBOUND_ALLOW_PRIVATE off (production), an admin cannot point a mailbox at this
    server or its network, neither on save nor through a name that resolves there; and the
    answers never tell an open port from a closed one."""
    settings.OUTBOUND_ALLOW_PRIVATE = False
    payload = {
        "address": "help@acme.example",
        "imap_port": 993,
        "smtp_port": 465,
        "smtp_security": "ssl",
        "username": "help@acme.example",
        "password": "secret",
    }
    for host in ("127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "::1", "localhost"):
        response = member_api.post(
            "/api/v1/email/accounts/",
            {**payload, "imap_host": host, "smtp_host": host},
            format="json",
        )
        assert response.status_code == 400, host
        assert "private or local" in response.json()["imap_host"][0]
    # A name that resolves to loopback, saved anyway: connecting refuses before any packet.
    account = EmailAccountFactory(company=company, imap_host="imap.acme.example")
    EmailAccount.objects.filter(pk=account.pk).update(imap_host="localhost", smtp_host="localhost")
    result = member_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/").json()
    assert "private or local" in result["imap"]["detail"]
    assert "private or local" in result["smtp"]["detail"]


@contextlib.contextmanager
def _listener(kind: str, accepted: list | None = None):
    """A local port that is open but no mail server: it hangs up at once, or answers HTTP;
    given `accepted`, it keeps each connection there (a test that none comes)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            if accepted is not None:
                accepted.append(conn)
                continue
            with conn:
                if kind == "http":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@pytest.mark.parametrize("secure", [True, False])
@pytest.mark.parametrize("kind", ["closed", "hangs up", "http"])
def test_connection_errors_do_not_tell_open_ports_from_closed_ones(
    member_api, company, kind, secure, caplog
):
    from .processes import free_port

    with contextlib.ExitStack() as stack:
        port = free_port() if kind == "closed" else stack.enter_context(_listener(kind))
        account = EmailAccountFactory(company=company, imap_port=port, imap_ssl=secure)
        EmailAccount.objects.filter(pk=account.pk).update(
            smtp_port=port, smtp_security="ssl" if secure else "none"
        )
        with caplog.at_level(logging.WARNING, logger="channels_integrations.email"):
            result = member_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/")
    # A closed port, one that hangs up, and one speaking another protocol (with or without
    # TLS) all read the same; only the log says what happened.
    assert result.json() == {
        "imap": {
            "ok": False,
            "detail": f"Could not connect to the IMAP server at 127.0.0.1:{port}.",
        },
        "smtp": {
            "ok": False,
            "detail": f"Could not connect to the SMTP server at 127.0.0.1:{port}.",
        },
    }
    assert f"no IMAP greeting from 127.0.0.1:{port}" in caplog.text
    assert f"cannot reach SMTP 127.0.0.1:{port}" in caplog.text


def test_a_name_that_resolves_here_on_a_second_look_is_never_reached(
    member_api, company, settings, monkeypatch
):
    """DNS rebinding: a name that resolves to a public address when it is checked and to this
    server a moment later. The name is resolved once and the connection goes to the address
    that was checked, so the local port never sees a connection."""
    settings.OUTBOUND_ALLOW_PRIVATE = False
    settings.EMAIL_IMAP_TIMEOUT = settings.EMAIL_SMTP_TIMEOUT = 1
    accepted = []
    real, looks = socket.getaddrinfo, []

    def rebinding(host, *args, **kwargs):
        if host != "mail.rebind.example":
            return real(host, *args, **kwargs)
        looks.append(host)
        address = "1.1.1.1" if len(looks) % 2 else "127.0.0.1"  # public, then here, ...
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with _listener("keep", accepted) as port:
        account = EmailAccountFactory(company=company, imap_host="mail.rebind.example")
        EmailAccount.objects.filter(pk=account.pk).update(
            imap_port=port, smtp_host="mail.rebind.example", smtp_port=port, smtp_security="ssl"
        )
        result = member_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/").json()
    assert not result["imap"]["ok"] and not result["smtp"]["ok"]
    assert accepted == []  # never connected to this server
    assert len(looks) == 2  # one look-up each for IMAP and SMTP, none between check and connect


# ---------------------------------------------------------------- deeply nested webhook bodies

WEBHOOK_DEPTH = 100_000


def _deep_bodies(kind: str) -> list[bytes]:
    """Bodies nested WEBHOOK_DEPTH levels: bare, and inside the channel's own envelope."""
    deep = "[" * WEBHOOK_DEPTH + "]" * WEBHOOK_DEPTH
    envelope = "whatsapp_business_account" if kind == "whatsapp" else "page"
    return [deep.encode(), f'{{"object": "{envelope}", "entry": [{deep}]}}'.encode()]


def _webhook_targets(company):
    from .factories import MessengerPageFactory, WhatsAppNumberFactory

    number = WhatsAppNumberFactory(company=company, provider="cloud", cloud_app_secret="s-cloud")
    page = MessengerPageFactory(company=company, app_secret="s-meta")
    return {
        "whatsapp": (f"/webhooks/whatsapp/{number.uuid}/", "s-cloud"),
        "meta": (f"/webhooks/meta/{page.uuid}/", "s-meta"),
    }


def _signature(raw: bytes, secret: str) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _nothing_stored():
    from messaging.models import Message
    from webhook_inbox.models import Delivery

    from .inbox import drain

    drain()
    return not Delivery.objects.exists() and not Message.objects.exists()


@pytest.mark.parametrize("kind", ["whatsapp", "meta"])
def test_a_deeply_nested_signed_webhook_is_a_4xx_and_stores_nothing(client, company, kind):
    """Through Django's views (what daphne serves): the signature is right, the body is JSON
    nested past any decoder's limit. Refused as not JSON, never a 5xx, never half-stored."""
    path, secret = _webhook_targets(company)[kind]
    for raw in _deep_bodies(kind):
        response = client.post(
            path,
            raw,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=_signature(raw, secret),
        )
        assert response.status_code == 400, response.content[:200]
    assert _nothing_stored()


@pytest.mark.django_db(transaction=True)
def test_a_deeply_nested_signed_webhook_through_the_fast_path_is_a_4xx(company, tmp_path):
    """The same bodies to uvicorn with crm.asgi (webhook_inbox.asgi in front of Django, as
    deployed): the fast path does not store them, Django refuses them, the process lives."""
    from .test_webhook_batches import Server

    targets = _webhook_targets(company)
    server = Server(tmp_path)
    try:
        for kind, (path, secret) in targets.items():
            for raw in _deep_bodies(kind):
                status, _ = server.post(path, raw, _signature(raw, secret))
                assert status == 400, (kind, status)
        ok = b'{"object": "page", "entry": []}'  # and the next delivery is taken as ever
        assert server.post(targets["meta"][0], ok, _signature(ok, "s-meta")) == (
            200,
            {"accepted": True},
        )
    finally:
        server.stop()
    log = (tmp_path / "uvicorn.log").read_text()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]
    from webhook_inbox.models import Delivery

    assert [bytes(d.body) for d in Delivery.objects.all()] == [ok]  # only the good one
