"""QR-linked WhatsApp sessions: QR in three forms, connect, inbound messages, sending through
the holder, logout, QR rotation cap, reconnect backoff, fencing, the supervisor, and the real
neonize client failing to reach WhatsApp.

WhatsApp's servers are unreachable here: the adapter (channels_integrations.whatsapp.web) is
the boundary. Most tests put tests.whatsapp_fakes.FakeWebAdapter there and drive its callbacks;
one runs the real neonize client on our PostgreSQL store. The session runner runs in a thread
of this process against the real PostgreSQL and Redis (hence transactional tests).
"""

import re
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from channels_integrations import connections
from channels_integrations.models import WhatsAppNumber, WhatsAppSession
from channels_integrations.whatsapp import lease as lease_module
from channels_integrations.whatsapp import metrics, sessions
from channels_integrations.whatsapp.lease import LeaseLost, SessionLease
from channels_integrations.whatsapp.web import WebInboundMessage
from crm import coordination
from messaging import realtime
from messaging.models import Message

from .factories import UserFactory, WhatsAppNumberFactory
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .processes import wait_for
from .whatsapp_fakes import FakeWebAdapter

pytestmark = pytest.mark.django_db(transaction=True)
Status = WhatsAppSession.Status


def session_of(number) -> WhatsAppSession:
    return WhatsAppSession.objects.get(number=number)


@pytest.fixture
def fast_sessions(settings):
    settings.WHATSAPP_WEB_ADAPTER = "tests.whatsapp_fakes.FakeWebAdapter"
    settings.CONNECTION_LEASE_SECONDS = 3.0
    settings.CONNECTION_HEARTBEAT_SECONDS = 0.2
    settings.CONNECTION_HEARTBEAT_MAX_AGE = 5.0
    settings.CONNECTION_BACKOFF_BASE = 0.05
    settings.CONNECTION_BACKOFF_CAP = 0.4
    settings.CONNECTION_MAX_RECONNECT_ATTEMPTS = 3
    settings.WHATSAPP_QR_MAX = 3
    FakeWebAdapter.mode = "connect"
    FakeWebAdapter.instances = []
    sessions.SHUTDOWN.clear()
    yield
    FakeWebAdapter.mode = "connect"


@pytest.fixture
def runners(fast_sessions, monkeypatch):
    """Sessions run in threads here; run_whatsapp_session.delay starts one (as a worker of
    the connections queue would)."""
    from channels_integrations.whatsapp import tasks

    threads: dict[int, threading.Thread] = {}

    def start(number_id):
        def run():
            try:
                sessions.run_session(number_id)
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        threads[number_id] = thread
        thread.start()
        return thread

    monkeypatch.setattr(tasks.run_whatsapp_session, "delay", start)
    yield start
    sessions.SHUTDOWN.set()
    for thread in threads.values():
        thread.join(timeout=10)
    sessions.SHUTDOWN.clear()


@pytest.fixture
def web_number(company):
    return WhatsAppNumberFactory(company=company, provider="web")


@pytest.fixture
def heard(settings):
    """Realtime events as they go out on Redis: heard() -> [(event, data, groups)]."""
    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    listener.subscribe(settings.REALTIME_CHANNEL)
    seen = []

    def drain():
        while message := listener.get_message(timeout=0.05):
            if message["type"] != "message":
                continue  # the subscription's confirmation
            for envelope in realtime.decode(message["data"]):
                payload = envelope["payload"]
                seen.append((payload["event"], payload["data"], envelope["groups"]))
        return seen

    yield drain
    listener.close()


def _events(heard, name):
    return [data for event, data, _ in heard() if event == name]


def _start(admin_api, number, wait_for_status=None):
    response = admin_api.post(f"/api/v1/whatsapp/numbers/{number.pk}/session/initialize/")
    assert response.status_code == 200, response.content
    if wait_for_status:
        wait_for(lambda: session_of(number).status == wait_for_status)
    return response.json()


# ---------------------------------------------------------------- QR, connect, messages


def test_initialize_returns_the_qr_three_ways_and_a_scan_connects(
    runners, web_number, admin_api, admin_user, heard
):
    FakeWebAdapter.mode = "qr"
    body = _start(admin_api, web_number)

    assert body["status"] == "qr"
    assert body["qr"].startswith("2@fake-qr-")
    assert body["qrDataUrl"].startswith("data:image/png;base64,")
    assert len(body["qrTerminal"].splitlines()) > 10  # a block drawing of the code
    [qr_event] = wait_for(lambda: _events(heard, "whatsapp.qr"))
    assert qr_event["qr"] == body["qr"] and qr_event["number_id"] == web_number.pk
    groups = [g for e, _, g in heard() if e == "whatsapp.qr"][0]
    assert groups == [f"user.{admin_user.pk}"]  # admins only, not the whole company

    adapter = FakeWebAdapter.instances[-1]
    adapter.scan()
    session = wait_for(lambda: (s := session_of(web_number)).status == Status.CONNECTED and s)
    assert session.last_connected_at and session.reconnect_attempts == 0
    web_number.refresh_from_db()
    assert web_number.web_jid.endswith("@s.whatsapp.net")
    assert web_number.status == WhatsAppNumber.Status.CONNECTED
    assert wait_for(lambda: _events(heard, "whatsapp.connected"))
    # Heartbeats flow while connected: the health endpoint says so.
    wait_for(lambda: session_of(web_number).last_heartbeat_at > session.last_connected_at)
    health = admin_api.get(f"/api/v1/whatsapp/numbers/{web_number.pk}/session/health/")
    assert health.status_code == 200 and health.json()["healthy"] is True


def test_initialising_again_gives_a_fresh_qr(runners, web_number, admin_api):
    FakeWebAdapter.mode = "qr"
    first = _start(admin_api, web_number)["qr"]
    second = _start(admin_api, web_number)["qr"]
    assert first and second and first != second
    assert len(FakeWebAdapter.instances) == 2  # the same holder, a new pairing attempt


def test_messages_of_the_session_land_in_the_inbox(runners, web_number, admin_api, heard):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    incoming = WebInboundMessage(
        wamid="3EB0C767D26A8B1A",
        phone="4915112345678",
        name="Kerry",
        body="Do you deliver on Sundays?",
        timestamp=timezone.now(),
    )
    adapter.callbacks.on_message(incoming)
    adapter.callbacks.on_message(incoming)  # WhatsApp redelivers after a reconnect
    message = Message.objects.get(external_id="3EB0C767D26A8B1A")
    assert message.body == "Do you deliver on Sundays?"
    assert message.conversation.source == web_number
    assert Message.objects.filter(external_id="3EB0C767D26A8B1A").count() == 1
    [event] = wait_for(lambda: _events(heard, "whatsapp.message"))
    assert event["message_id"] == message.pk
    assert metrics.counters(web_number.company_id)["messages_received"] == 1


def test_replies_go_out_through_the_holder_and_never_twice(
    runners, web_number, admin_api, api_for, agent_user, eager_celery, settings
):
    settings.WHATSAPP_SEND_RATE_PER_MINUTE = 1000
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]

    response = api_for(agent_user).post(
        f"/api/v1/whatsapp/numbers/{web_number.pk}/send/",
        {"phone": "+4915112345678", "message": "Yes, Sundays 10-14."},
        format="json",
    )
    assert response.status_code == 202
    message = Message.objects.get(pk=response.json()["message"]["id"])
    assert message.status == "sent" and message.external_id == f"wamid.web.{web_number.pk}.1"
    assert adapter.sent == [("+4915112345678", "Yes, Sundays 10-14.")]

    # The task runs again (a redelivery): answered from the holder's record, not resent.
    key = f"message:{message.pk}"
    receipt = sessions.send_through_session(web_number.pk, key, "+4915112345678", "x")
    assert receipt.external_id == message.external_id
    assert len(adapter.sent) == 1


def test_sending_without_a_live_session_is_retried_later_not_lost(web_number, fast_sessions):
    from messaging.channels import TransientSendError

    with pytest.raises(TransientSendError, match="not connected"):
        sessions.send_through_session(web_number.pk, "message:424242", "+4915112345678", "Hello")


def test_every_path_sends_through_the_holder_and_ids_of_different_kinds_never_collide(
    runners, web_number, admin_api, admin_user, eager_celery, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """An inbox reply, a bot's reply and a broadcast on a QR-linked number all reach the
    phone's session; a broadcast recipient and an inbox message that share an id are two
    different sends (their records are namespaced), so neither is answered from the other's."""
    from channels_integrations.models import BroadcastRecipient
    from channels_integrations.whatsapp import broadcasts
    from messaging.services import Sender, ingest_inbound, send_message

    from .factories import BotRuleFactory

    settings.BROADCAST_RATE_PER_MINUTE = 1000
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    BotRuleFactory(bot__number=web_number, trigger="hours", reply_text="Mon-Fri 9-18.")
    maria = Sender(address="+4915112345678", name="Maria", phone="+4915112345678")
    with django_capture_on_commit_callbacks(execute=True):
        inbound = ingest_inbound(web_number, "4915112345678", "wamid.in.1", maria, "hours?")
    with django_capture_on_commit_callbacks(execute=True):
        reply = send_message(inbound.conversation, admin_user, "And Sundays 10-14.")
    broadcast = broadcasts.create_broadcast(
        admin_user, number=web_number, text="Flash sale", phones="+4915199999999"
    )
    # The broadcast's recipient gets the reply's id: the old record keyed by a bare id would
    # answer the broadcast from the reply's record and never send it.
    BroadcastRecipient.objects.filter(broadcast=broadcast).update(id=reply.pk)
    broadcasts.run_broadcast_batch(broadcast.pk)

    reply.refresh_from_db()
    recipient = BroadcastRecipient.objects.get(broadcast=broadcast)
    assert reply.status == "sent" and recipient.status == "sent" and recipient.pk == reply.pk
    assert recipient.provider_message_id != reply.external_id
    assert sorted(adapter.sent) == sorted(
        [
            ("+4915112345678", "Mon-Fri 9-18."),
            ("+4915112345678", "And Sundays 10-14."),
            ("+4915199999999", "Flash sale"),
        ]
    )


# ---------------------------------------------------------------- logout, QR cap, backoff


def test_logout_from_the_phone_stops_and_is_never_retried(
    runners, web_number, admin_api, heard, monkeypatch
):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    adapter.callbacks.on_logged_out("logged out (reason 401)")

    wait_for(lambda: session_of(web_number).status == Status.LOGGED_OUT)
    wait_for(lambda: lease_module.number_holder(web_number.pk) is None)  # the holder let go
    web_number.refresh_from_db()
    assert web_number.web_jid == ""
    assert wait_for(lambda: _events(heard, "whatsapp.logout"))
    started = []
    from channels_integrations.whatsapp import tasks

    monkeypatch.setattr(tasks.run_whatsapp_session, "delay", started.append)
    assert sessions.supervise()["started"] == [] and started == []


def test_an_admin_logout_goes_through_the_holder(runners, web_number, admin_api):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    response = admin_api.post(f"/api/v1/whatsapp/numbers/{web_number.pk}/session/logout/")
    assert response.status_code == 200 and response.json()["status"] == "logged_out"
    assert adapter.logged_out is True
    wait_for(lambda: lease_module.number_holder(web_number.pk) is None)


def test_an_unscanned_qr_stops_after_the_cap(runners, web_number, admin_api, heard):
    FakeWebAdapter.mode = "rotate"
    _start(admin_api, web_number)
    session = wait_for(lambda: (s := session_of(web_number)).status == Status.QR_TIMEOUT and s)
    assert "not scanned in time" in session.last_error
    assert len(_events(heard, "whatsapp.qr")) == settings.WHATSAPP_QR_MAX
    wait_for(lambda: lease_module.number_holder(web_number.pk) is None)
    assert metrics.counters(web_number.company_id)["qr_generated"] == settings.WHATSAPP_QR_MAX


def test_failed_connections_back_off_and_then_wait_for_an_admin(
    runners, web_number, admin_api, heard
):
    FakeWebAdapter.mode = "fail"
    _start(admin_api, web_number)
    session = wait_for(lambda: (s := session_of(web_number)).status == Status.FAILED and s)
    assert session.reconnect_attempts == settings.CONNECTION_MAX_RECONNECT_ATTEMPTS
    assert "no such host" in session.last_error
    errors = _events(heard, "whatsapp.error")
    assert [e["attempt"] for e in errors] == [1, 2]
    assert all(0 < e["retry_in_seconds"] <= settings.CONNECTION_BACKOFF_CAP for e in errors)
    [failed] = wait_for(lambda: _events(heard, "whatsapp.reconnect_failed"))
    assert failed["attempts"] == 3
    counters = metrics.counters(web_number.company_id)
    assert counters["failed_reconnects"] == 1 and counters["errors"] == 3
    assert "no such host" in counters["last_error"]["error"]


def test_backoff_doubles_from_one_second_to_a_five_minute_cap_with_jitter(settings):
    settings.CONNECTION_BACKOFF_BASE, settings.CONNECTION_BACKOFF_CAP = 1.0, 300.0
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (9, 256), (10, 300), (30, 300)]:
        delays = [connections.backoff_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not one value


# ---------------------------------------------------------------- one holder, fencing


def test_a_second_holder_is_refused_and_a_stale_one_writes_nothing(web_number, fast_sessions):
    first = SessionLease.acquire(web_number.pk)
    assert first is not None
    assert SessionLease.acquire(web_number.pk) is None  # held: a second worker refuses
    assert sessions.run_session(web_number.pk) == "held"

    # The first holder pauses past its TTL; its lease lapses and another worker takes over.
    coordination.redis_client().delete(coordination.key(lease_module.lease_name(web_number.pk)))
    second = SessionLease.acquire(web_number.pk)
    assert second is not None and second.epoch > first.epoch
    second.write(status=Status.CONNECTED)

    assert first.renew() is False
    with pytest.raises(LeaseLost):
        first.write(status=Status.RECONNECTING, last_error="stale")
    # Even if the stale holder's Redis check were fooled, PostgreSQL refuses its epoch.
    coordination.redis_client().set(
        coordination.key(lease_module.lease_name(web_number.pk)), first.token
    )
    with pytest.raises(LeaseLost):
        first.write(status=Status.RECONNECTING, last_error="stale")
    session = session_of(web_number)
    assert session.status == Status.CONNECTED and session.last_error == ""
    assert session.holder == second.token


# ---------------------------------------------------------------- supervisor


def test_supervisor_starts_wanted_sessions_once_and_respects_backoff(
    web_number, company, fast_sessions, monkeypatch
):
    from channels_integrations.whatsapp import tasks

    started = []
    monkeypatch.setattr(tasks.run_whatsapp_session, "delay", started.append)
    WhatsAppSession.objects.create(number=web_number, status=Status.RECONNECTING)
    backing_off = WhatsAppNumberFactory(company=company, provider="web")
    WhatsAppSession.objects.create(
        number=backing_off,
        status=Status.RECONNECTING,
        next_attempt_at=timezone.now() + timedelta(minutes=2),
    )
    for status in (Status.LOGGED_OUT, Status.FAILED, Status.QR_TIMEOUT, Status.STOPPED):
        waiting = WhatsAppNumberFactory(company=company, provider="web")
        WhatsAppSession.objects.create(number=waiting, status=status)
    inactive = WhatsAppNumberFactory(company=company, provider="web", is_active=False)
    WhatsAppSession.objects.create(number=inactive, status=Status.CONNECTED)

    assert sessions.supervise()["started"] == [web_number.pk]
    assert sessions.supervise()["started"] == []  # once per period, even if beat overlaps
    assert started == [web_number.pk]


def test_supervisor_restarts_a_connection_whose_heartbeat_is_late(
    runners, web_number, admin_api, heard
):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    first = FakeWebAdapter.instances[-1]
    first.connected = False  # alive socket, dead link: no more heartbeats
    WhatsAppSession.objects.filter(number=web_number).update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=60)
    )
    assert sessions.supervise()["unhealthy"] == [web_number.pk]
    assert wait_for(lambda: _events(heard, "whatsapp.health_check_failed"))
    wait_for(lambda: len(FakeWebAdapter.instances) == 2)  # restarted by its holder
    wait_for(lambda: session_of(web_number).status == Status.CONNECTED)


def test_deactivating_the_number_stops_its_session(runners, web_number, admin_api):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    response = admin_api.patch(
        f"/api/v1/whatsapp/numbers/{web_number.pk}/", {"is_active": False}, format="json"
    )
    assert response.status_code == 200
    wait_for(lambda: lease_module.number_holder(web_number.pk) is None)
    assert FakeWebAdapter.instances[-1].connected is False
    assert session_of(web_number).status == Status.STOPPED


def test_sigterm_closes_sessions_and_releases_leases(runners, web_number, admin_api):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    sessions.SHUTDOWN.set()  # what the worker_shutting_down signal does
    wait_for(lambda: lease_module.number_holder(web_number.pk) is None)
    assert FakeWebAdapter.instances[-1].connected is False
    # Still wanted: the supervisor starts it again on a worker that stays.
    assert session_of(web_number).status in WhatsAppSession.WANTED


# ---------------------------------------------------------------- the real neonize client


@pytest.mark.timeout(120)
def test_real_neonize_client_without_a_route_records_the_failure_and_backs_off(
    web_number, admin_user, settings, heard
):
    """The real NeonizeAdapter on our PostgreSQL store; this machine has no route to
    WhatsApp, so every dial fails: the runner must record it, back off, and give up."""
    settings.WHATSAPP_WEB_ADAPTER = "channels_integrations.whatsapp.web.NeonizeAdapter"
    settings.CONNECTION_BACKOFF_BASE, settings.CONNECTION_BACKOFF_CAP = 0.2, 1.0
    settings.CONNECTION_MAX_RECONNECT_ATTEMPTS = 2
    WhatsAppSession.objects.create(number=web_number, status=Status.STARTING)

    started = time.monotonic()
    assert sessions.run_session(web_number.pk) == "failed"
    elapsed = time.monotonic() - started

    session = session_of(web_number)
    assert session.status == Status.FAILED and session.reconnect_attempts == 2
    assert "dial" in session.last_error or "websocket" in session.last_error.lower()
    assert elapsed >= 0.1  # it waited before the second attempt
    [error] = _events(heard, "whatsapp.error")
    assert error["attempt"] == 1
    with connection.cursor() as cursor:  # neonize keeps its keys in PostgreSQL, not files
        cursor.execute("SELECT to_regclass('whatsmeow_device') IS NOT NULL")
        assert cursor.fetchone()[0] is True
    assert lease_module.number_holder(web_number.pk) is None


# ---------------------------------------------------------------- API: lists, access, metrics


def test_sessions_list_health_and_metrics(runners, web_number, admin_api, api_for, company):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    idle = WhatsAppNumberFactory(company=company, provider="web")
    WhatsAppSession.objects.create(number=idle, status=Status.LOGGED_OUT)
    agent = UserFactory(company=company, role=Role.AGENT)

    listing = api_for(agent).get("/api/v1/whatsapp/sessions/").json()
    by_number = {row["number_id"]: row for row in listing["results"]}
    assert by_number[web_number.pk]["status"] == "connected"
    assert by_number[web_number.pk]["healthy"] is True
    assert by_number[idle.pk]["healthy"] is False
    assert listing["metrics"]["total_sessions"] == 2 and listing["metrics"]["connected"] == 1

    unhealthy = admin_api.get(f"/api/v1/whatsapp/numbers/{idle.pk}/session/health/")
    assert unhealthy.status_code == 503 and "logged out" in unhealthy.json()["health"].lower()
    status = api_for(agent).get(f"/api/v1/whatsapp/numbers/{web_number.pk}/session/status/")
    assert status.status_code == 200 and status.json()["status"] == "connected"

    # Agents may look and send, not manage sessions.
    for action in ("initialize", "logout"):
        url = f"/api/v1/whatsapp/numbers/{web_number.pk}/session/{action}/"
        assert api_for(agent).post(url).status_code == 403


def test_another_companys_number_is_404_for_every_session_action(admin_api, other_company):
    foreign = WhatsAppNumberFactory(company=other_company, provider="web")
    base = f"/api/v1/whatsapp/numbers/{foreign.pk}"
    for method, path in [
        ("post", "session/initialize/"),
        ("get", "session/status/"),
        ("get", "session/health/"),
        ("post", "session/logout/"),
        ("post", "send/"),
    ]:
        assert getattr(admin_api, method)(f"{base}/{path}").status_code == 404
    assert not WhatsAppSession.objects.filter(number=foreign).exists()


# ---------------------------------------------------------------- Settings → WhatsApp page


def test_the_page_shows_a_session_card_and_the_qr_to_admins_only(
    runners, web_number, client, admin_user, company
):
    FakeWebAdapter.mode = "qr"
    client.force_login(admin_user)
    response = client.post(reverse("number_session_connect", args=[web_number.pk]))
    assert response.status_code == 302
    wait_for(lambda: sessions.current_qr(web_number.pk))

    page = client.get(reverse("numbers")).content.decode()
    assert f'id="session-{web_number.pk}"' in page
    assert 'src="data:image/png;base64,' in page
    assert "Waiting for QR scan" in page

    agent = UserFactory(company=company, role=Role.AGENT)
    client.force_login(agent)
    page = client.get(reverse("numbers")).content.decode()
    assert f'id="session-{web_number.pk}"' in page  # agents see the state...
    assert "data:image/png;base64," not in page  # ...never the QR (it links a device)
    assert client.post(reverse("number_session_connect", args=[web_number.pk])).status_code == 403


def test_logout_from_the_page(runners, web_number, client, admin_user):
    client.force_login(admin_user)
    client.post(reverse("number_session_connect", args=[web_number.pk]))
    wait_for(lambda: session_of(web_number).status == Status.CONNECTED)
    response = client.post(reverse("number_session_logout", args=[web_number.pk]), follow=True)
    assert "is logged out" in response.content.decode()
    assert session_of(web_number).status == Status.LOGGED_OUT


def _numbers_page_showing_a_qr(daphne_server, browser, company):
    """An admin's numbers page, live, with a QR-linked number's first QR code shown:
    (page, number, the QR image, its first src)."""
    from playwright.sync_api import expect

    admin = UserFactory(company=company, role=Role.ADMIN)
    number = WhatsAppNumberFactory(company=company, provider="web")
    FakeWebAdapter.mode = "qr"
    page = log_in(browser, daphne_server, admin)  # noqa: F405
    page.goto(f"{daphne_server.url}{reverse('numbers')}")
    wait_live(page)  # noqa: F405
    page.evaluate("window.__noReload = true")
    sessions.initialize_session(admin, number, wait_seconds=5)
    image = page.locator(f"#session-{number.pk} [data-session-qr]")
    expect(image).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    return page, number, image, image.get_attribute("src")


@pytest.mark.browser
def test_the_qr_rotates_and_the_card_turns_connected_live(runners, daphne_server, browser, company):  # noqa: F405
    """A real browser on the page; the session runs in this process (its adapter is the fake)
    and its events reach the page through Redis and daphne."""
    from playwright.sync_api import expect

    page, number, image, first = _numbers_page_showing_a_qr(daphne_server, browser, company)

    adapter = FakeWebAdapter.instances[-1]
    adapter.callbacks.on_qr("2@fake-qr-rotated,pubkey,identity,adv")  # WhatsApp rotates it
    expect(image).not_to_have_attribute("src", first)

    adapter.scan()
    expect(page.locator(f"#session-{number.pk} [data-session-status]")).to_have_text("Connected")
    expect(page.locator(f"#session-{number.pk} [data-session-qr]")).to_have_count(1)
    expect(page.locator(f"#session-{number.pk} figure.qr")).to_be_hidden()
    assert page.evaluate("window.__noReload === true")


@pytest.mark.browser
def test_a_qr_rotating_while_the_table_is_fetched_is_not_put_back(
    runners, daphne_server, browser, company
):  # noqa: F405
    """The numbers table is being fetched (something else changed) when WhatsApp rotates the
    QR: the answer, rendered before the rotation, lands after the new code was swapped in. The
    page must not end on the old code (one that no longer links the phone)."""
    from playwright.sync_api import expect

    page, number, image, first = _numbers_page_showing_a_qr(daphne_server, browser, company)
    adapter = FakeWebAdapter.instances[-1]
    page.wait_for_timeout(1500)  # the refreshes the session's start asked for have landed
    page.evaluate("document.querySelector('[data-session-qr]').dataset.old = '1'")

    answered_late = []

    def late(route):
        if answered_late or "hx-request" not in route.request.headers:
            route.continue_()
            return
        stale = route.fetch()  # rendered now: the first QR
        adapter.callbacks.on_qr("2@fake-qr-rotated,pubkey,identity,adv")
        time.sleep(1.0)  # the rotation's event reaches the page and is swapped in
        answered_late.append(True)
        route.fulfill(response=stale)

    page.route(re.compile(r".*/settings/whatsapp/(\?.*)?$"), late)
    sessions.publish_to_admins("number.updated", number, {"id": number.pk})  # a refresh starts
    # The late answer replaced the table (the marked image is gone) ...
    expect(page.locator("[data-session-qr][data-old]")).to_have_count(0)  # no eval: the CSP
    assert answered_late
    # ... and the page does not stay on the old code.
    expect(image).not_to_have_attribute("src", first)


def test_reading_a_status_creates_nothing(admin_api, web_number):
    body = admin_api.get(f"/api/v1/whatsapp/numbers/{web_number.pk}/session/status/").json()
    assert body["status"] == "stopped" and body["id"] is None and body["healthy"] is False
    assert (
        admin_api.get(f"/api/v1/whatsapp/numbers/{web_number.pk}/session/health/").status_code
        == 503
    )
    assert not WhatsAppSession.objects.filter(number=web_number).exists()


def test_drops_of_a_working_connection_never_add_up_to_giving_up(
    runners, web_number, admin_api, heard
):
    """Each drop after a connection that was up counts from 1 again: a session that drops
    once a day is never `failed` after CONNECTION_MAX_RECONNECT_ATTEMPTS (3 here) days."""
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    for drop in range(1, 6):
        adapter = FakeWebAdapter.instances[-1]
        adapter.stop()  # the phone lost its network: the connection closes
        wait_for(lambda count=drop: len(FakeWebAdapter.instances) > count, timeout=10)
        wait_for(lambda: session_of(web_number).status == Status.CONNECTED, timeout=10)
    errors = _events(heard, "whatsapp.error")
    assert [e["attempt"] for e in errors] == [1] * 5
    assert _events(heard, "whatsapp.reconnect_failed") == []
    assert session_of(web_number).reconnect_attempts == 0


def test_a_failing_callback_is_recorded_and_retried_never_left_starting(
    runners, web_number, admin_api, monkeypatch, heard
):
    """The first 'connected' callback fails (here: the write of the number's state): the
    session is not left `starting` as if nothing happened; the failure is its last error and
    counted, and the retry connects."""
    from channels_integrations.whatsapp import metrics

    real_write_connected = sessions.SessionLease.write_connected
    failures = []

    def failing_once(lease, **fields):
        if not failures:
            failures.append(1)
            raise RuntimeError("database hiccup")
        return real_write_connected(lease, **fields)

    monkeypatch.setattr(sessions.SessionLease, "write_connected", failing_once)
    errors_before = metrics.counters()["errors"]
    _start(admin_api, web_number)
    wait_for(lambda: session_of(web_number).status == WhatsAppSession.Status.CONNECTED)
    session = session_of(web_number)
    assert failures == [1]
    assert session.last_error == ""  # cleared by the connection that came up
    assert len(FakeWebAdapter.instances) == 2  # the failed connection, then the retry
    assert metrics.counters()["errors"] > errors_before
    [error] = _events(heard, "whatsapp.error")  # what admins were told, with the retry
    assert "database hiccup" in error["error"] and error["attempt"] == 1
