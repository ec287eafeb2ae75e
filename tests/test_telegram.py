"""Telegram user accounts: the supervised listener, inbound messages (new, media, edited,
deleted, replayed by a catch-up), replies through the same client with FLOOD_WAIT honoured,
revoked sessions, the log-in steps, and the real Telethon client without a route.

Telegram's servers are unreachable here. The boundary is the Telethon client: most tests put
tests.telegram_fakes.FakeTelegramClient there (settings.TELEGRAM_CLIENT_FACTORY) and deliver
Telethon-shaped events to the handlers our listener registered; errors are Telethon's own
classes. One test runs the real Telethon client from a stored string session. The listener
runs in a thread of this process against the real PostgreSQL and Redis.
"""

import os
import threading

import pytest
import redis
from django.db import connection
from django.utils import timezone
from telethon.errors import (
    AuthKeyUnregisteredError,
    FloodWaitError,
    PasswordHashInvalidError,
    PhoneCodeExpiredError,
    PhoneCodeInvalidError,
    SessionPasswordNeededError,
)

from channels_integrations.connections import SHUTDOWN
from channels_integrations.models import TelegramAccount
from channels_integrations.telegram import listener as telegram_listener
from channels_integrations.telegram import tasks
from messaging import realtime
from messaging.models import Attachment, Conversation, Message

from . import telegram_fakes as tg
from .factories import TelegramAccountFactory
from .processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = TelegramAccount.Status
URL = "/api/v1/telegram/accounts/"


def state(account) -> TelegramAccount:
    return TelegramAccount.objects.get(pk=account.pk)


@pytest.fixture
def fake_telegram(settings):
    settings.TELEGRAM_CLIENT_FACTORY = "tests.telegram_fakes.FakeTelegramClient"
    settings.TELEGRAM_CONNECT_TIMEOUT = 2.0
    settings.TELEGRAM_SEND_TIMEOUT = 5.0
    settings.CONNECTION_LEASE_SECONDS = 3.0
    settings.CONNECTION_HEARTBEAT_SECONDS = 0.2
    settings.CONNECTION_BACKOFF_BASE = 0.05
    settings.CONNECTION_BACKOFF_CAP = 0.2
    settings.CONNECTION_MAX_RECONNECT_ATTEMPTS = 3
    tg.FakeTelegramClient.reset()
    SHUTDOWN.clear()
    yield tg.FakeTelegramClient
    tg.FakeTelegramClient.reset()


@pytest.fixture
def listeners(fake_telegram, monkeypatch):
    """run_telegram_listener.delay starts the listener in a thread (as the connections
    worker would)."""
    threads = []

    def start(account_id):
        def run():
            try:
                telegram_listener.run_listener(account_id)
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(tasks.run_telegram_listener, "delay", start)
    yield start
    SHUTDOWN.set()
    for thread in threads:
        thread.join(timeout=10)
    SHUTDOWN.clear()


@pytest.fixture
def account(company, admin_user):
    return TelegramAccountFactory(company=company)


@pytest.fixture
def heard(settings):
    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    listener.subscribe(settings.REALTIME_CHANNEL)
    seen = []

    def drain(name=None):
        while message := listener.get_message(timeout=0.05):
            if message["type"] == "message":
                for envelope in realtime.decode(message["data"]):
                    payload = envelope["payload"]
                    seen.append((payload["event"], payload["data"]))
        return [data for event, data in seen if name is None or event == name]

    yield drain
    listener.close()


def connected(listeners, account):
    """Start the account's listener and wait until it is connected; its fake client."""
    assert telegram_listener.supervise()["started"] == [account.pk]
    wait_for(lambda: state(account).status == Status.CONNECTED)
    return tg.FakeTelegramClient.instances[-1]


# ---------------------------------------------------------------- listening


def test_the_supervisor_starts_one_listener_that_catches_up_and_receives(
    listeners, account, heard, caplog
):
    missed = tg.new_message(11, "Sent while you were away")
    tg.FakeTelegramClient.script["missed"] = [("NewMessage", missed)]
    client = connected(listeners, account)
    # Caught up: the catch-up runs once the account shows connected.
    assert wait_for(lambda: "catch-up 1" in caplog.text)

    assert [c[0] for c in client.calls[:3]] == ["connect", "is_user_authorized", "catch_up"]
    assert client.session.value == account.session_string  # the stored string session
    assert (client.api_id, client.api_hash) == (account.api_id, account.api_hash)
    assert Message.objects.filter(external_id="11").exists()
    assert telegram_listener.supervise()["started"] == []  # held: not started twice
    assert wait_for(lambda: heard("telegram.connected"))
    [announced] = heard("telegram.connected")
    assert (announced["status"], announced["status_label"]) == ("connected", "Connected")

    client.deliver("NewMessage", tg.new_message(12, "Is the blue one in stock?"))
    message = Message.objects.get(external_id="12")
    conversation = message.conversation
    assert conversation.source_id == account.pk and conversation.platform == "telegram"
    assert conversation.external_thread_id == "424242"
    assert message.body == "Is the blue one in stock?" and message.sender_name == "Maria Lopez"
    client_row = conversation.client
    assert client_row.telegram_user_id == 424242 and client_row.telegram_username == "maria_l"
    assert str(client_row.phone) == "+4915112345678"
    account.refresh_from_db()
    assert account.messages_received == 2 and account.last_event_at is not None
    assert "catch-up 1" in caplog.text and "Is the blue one" not in caplog.text


def test_a_replayed_message_after_a_reconnect_is_stored_once(listeners, account):
    client = connected(listeners, account)
    client.deliver("NewMessage", tg.new_message(21, "Hello"))
    # The connection drops; the next client catches up and Telegram replays message 21.
    tg.FakeTelegramClient.script["missed"] = [("NewMessage", tg.new_message(21, "Hello"))]
    client.drop()
    wait_for(lambda: len(tg.FakeTelegramClient.instances) == 2)
    wait_for(
        lambda: state(account).status == Status.CONNECTED and state(account).reconnect_attempts == 0
    )
    wait_for(lambda: ("catch_up",) in tg.FakeTelegramClient.instances[-1].calls)
    assert Message.objects.filter(external_id="21").count() == 1
    assert state(account).messages_received == 1


def test_media_edits_deletions_and_groups(listeners, account):
    client = connected(listeners, account)
    client.deliver("NewMessage", tg.new_message(31, "The lid", media=tg.photo()))
    attachment = Attachment.objects.get(message__external_id="31")
    assert (attachment.kind, attachment.filename, attachment.content_type, attachment.size) == (
        "image", "lid.jpg", "image/jpeg", 48213,
    )  # fmt: skip

    client.deliver("MessageEdited", tg.edited(31, "The lid, broken"))
    message = Message.objects.get(external_id="31")
    assert message.body == "The lid, broken" and message.metadata["edited_at"]

    client.deliver("MessageDeleted", tg.deleted(31, 999))
    message.refresh_from_db()
    assert message.metadata["deleted"] is True

    client.deliver("NewMessage", tg.new_message(32, "In a group", private=False))
    assert not Message.objects.filter(external_id="32").exists()


# ---------------------------------------------------------------- replies


def _reply(api_for, user, account, body="We have it, yes."):
    conversation = Conversation.objects.of_source(account).get()
    return api_for(user).post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"body": body}, format="json"
    )


def test_replies_go_out_through_the_same_client(
    listeners, account, api_for, agent_user, eager_celery
):
    client = connected(listeners, account)
    client.deliver("NewMessage", tg.new_message(41, "Do you have it?"))
    response = _reply(api_for, agent_user, account)
    assert response.status_code == 201, response.content
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "sent" and message.external_id
    assert client.sent == [(424242, "We have it, yes.")]


def test_flood_wait_holds_the_message_and_sends_it_after_the_delay(
    listeners, account, api_for, agent_user, queued_sends, django_capture_on_commit_callbacks
):
    """The retry waits Telegram's seconds: it is queued with that countdown, and a task that
    arrives earlier (a redelivery) does not send before the wait is over."""
    from messaging import tasks as messaging_tasks

    client = connected(listeners, account)
    client.deliver("NewMessage", tg.new_message(51, "Hi"))
    tg.FakeTelegramClient.script["send_errors"] = [FloodWaitError(request=None, capture=7)]
    with django_capture_on_commit_callbacks(execute=True):
        response = _reply(api_for, agent_user, account)
    message_id = response.json()["id"]
    assert queued_sends == [(message_id, None)]
    with django_capture_on_commit_callbacks(execute=True):
        messaging_tasks.deliver_message.run(message_id)
    assert queued_sends[1:] == [(message_id, 8)]  # Telegram's 7 s, and a second to spare
    message = Message.objects.get(pk=message_id)
    assert message.status == "queued" and "wait 7 s" in message.error  # shown to the agent
    assert client.sent == []
    messaging_tasks.deliver_message.run(message_id)  # too early: nothing happens
    assert client.sent == []

    Message.objects.filter(pk=message_id).update(next_attempt_at=timezone.now())
    messaging_tasks.deliver_message.run(message_id)  # the retry, after the delay
    message.refresh_from_db()
    assert message.status == "sent" and client.sent == [(424242, "We have it, yes.")]


def test_a_revoked_session_logs_the_account_out_and_tells_admins(listeners, account, heard):
    tg.FakeTelegramClient.script["connect_error"] = AuthKeyUnregisteredError(request=None)
    telegram_listener.supervise()
    wait_for(lambda: state(account).status == Status.LOGGED_OUT)
    assert "log in again" in state(account).last_error
    assert wait_for(lambda: heard("telegram.logout"))
    wait_for(lambda: telegram_listener.account_holder(account.pk) is None)
    assert telegram_listener.supervise()["started"] == []  # never retried by itself


def test_an_unauthorised_stored_session_is_logged_out_not_retried(listeners, account):
    tg.FakeTelegramClient.script["authorized"] = False
    telegram_listener.supervise()
    wait_for(lambda: state(account).status == Status.LOGGED_OUT)
    assert len(tg.FakeTelegramClient.instances) == 1


def test_connection_failures_back_off_then_wait_for_an_admin(listeners, account, heard):
    tg.FakeTelegramClient.script["connect_error"] = ConnectionError("network unreachable")
    telegram_listener.supervise()
    wait_for(lambda: state(account).status == Status.ERROR)
    account = state(account)
    assert account.reconnect_attempts == 3 and "network unreachable" in account.last_error
    errors = heard("telegram.error")
    assert [e.get("attempt") for e in errors] == [1, 2, None] and errors[-1]["gave_up"]
    assert telegram_listener.supervise()["started"] == []


def test_deactivating_the_account_stops_its_listener(listeners, account, admin_api):
    client = connected(listeners, account)
    assert (
        admin_api.patch(f"{URL}{account.pk}/", {"is_active": False}, format="json").status_code
        == 200
    )
    wait_for(lambda: telegram_listener.account_holder(account.pk) is None)
    assert ("disconnect",) in client.calls


# ---------------------------------------------------------------- logging in


def test_log_in_with_code_then_password(fake_telegram, listeners, admin_api, company):
    account = TelegramAccountFactory(company=company, session_string="")
    fake_telegram.script["sign_in_errors"] = []
    assert admin_api.post(f"{URL}{account.pk}/login/send-code/").json() == {"status": "code_sent"}
    assert admin_api.get(f"{URL}{account.pk}/").json()["login_step"] == "code"
    sent = fake_telegram.instances[-1]
    assert ("send_code_request", str(account.phone)) in sent.calls

    fake_telegram.script["sign_in_errors"] = [PhoneCodeInvalidError(request=None)]
    bad = admin_api.post(f"{URL}{account.pk}/login/code/", {"code": "11111"}, format="json")
    assert bad.status_code == 400 and bad.json() == {
        "code": ["The code is not right; check it and try again."]
    }

    fake_telegram.script["sign_in_errors"] = [SessionPasswordNeededError(request=None)]
    step = admin_api.post(f"{URL}{account.pk}/login/code/", {"code": "12 345"}, format="json")
    assert step.json() == {"status": "password_needed"}
    assert ("sign_in", str(account.phone), "12345", "0123abcd", None) in fake_telegram.instances[
        -1
    ].calls

    fake_telegram.script["sign_in_errors"] = [PasswordHashInvalidError(request=None)]
    wrong = admin_api.post(
        f"{URL}{account.pk}/login/password/", {"password": "guess"}, format="json"
    )
    assert wrong.status_code == 400 and wrong.json() == {"password": ["The password is wrong."]}

    done = admin_api.post(
        f"{URL}{account.pk}/login/password/", {"password": "s3cret"}, format="json"
    )
    assert done.json() == {"status": "connected"}
    account.refresh_from_db()
    assert account.session_string.endswith("authorised-session") and not account.login_state
    assert admin_api.get(f"{URL}{account.pk}/").json()["login_step"] is None
    wait_for(lambda: state(account).status == Status.CONNECTED)  # started at once


@pytest.mark.parametrize(
    "error,field,words",
    [
        (PhoneCodeExpiredError(request=None), "code", "expired"),
        (FloodWaitError(request=None, capture=120), "code", "wait 120 seconds"),
    ],
)
def test_each_refusal_is_said_in_words(fake_telegram, admin_api, company, error, field, words):
    account = TelegramAccountFactory(company=company, session_string="")
    admin_api.post(f"{URL}{account.pk}/login/send-code/")
    fake_telegram.script["sign_in_errors"] = [error]
    response = admin_api.post(f"{URL}{account.pk}/login/code/", {"code": "12345"}, format="json")
    assert response.status_code == 400 and words in response.json()[field][0]


def test_a_code_without_a_log_in_in_progress(
    fake_telegram, admin_api, company, api_for, agent_user
):
    account = TelegramAccountFactory(company=company, session_string="")
    response = admin_api.post(f"{URL}{account.pk}/login/code/", {"code": "12345"}, format="json")
    assert response.status_code == 400 and "send a code first" in response.json()["code"][0]
    assert api_for(agent_user).post(f"{URL}{account.pk}/login/send-code/").status_code == 403


def test_api_id_is_an_integer_column_in_postgresql(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = 'api_id'",
            [TelegramAccount._meta.db_table],
        )
        assert cursor.fetchone()[0] == "integer"


# ---------------------------------------------------------------- the real Telethon client


@pytest.mark.timeout(120)
def test_real_telethon_client_from_a_stored_session_without_a_route(
    settings, company, admin_user, heard
):
    """The real TelegramClient from a stored string session; this machine cannot reach
    Telegram, so each connection attempt fails or times out: recorded, backed off, given up."""
    from telethon.crypto import AuthKey
    from telethon.sessions import StringSession

    session = StringSession()
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(os.urandom(256))
    account = TelegramAccountFactory(company=company, session_string=session.save())
    settings.TELEGRAM_CONNECT_TIMEOUT = 2.0
    settings.CONNECTION_BACKOFF_BASE, settings.CONNECTION_BACKOFF_CAP = 0.2, 1.0
    settings.CONNECTION_MAX_RECONNECT_ATTEMPTS = 2
    SHUTDOWN.clear()

    assert telegram_listener.run_listener(account.pk) == "failed"
    account.refresh_from_db()
    assert account.status == Status.ERROR and account.reconnect_attempts == 2
    assert account.last_error  # in words: what failed
    [first] = [e for e in heard("telegram.error") if e.get("attempt") == 1]
    assert 0.1 <= first["retry_in_seconds"] <= 0.2
    assert telegram_listener.account_holder(account.pk) is None


# ---------------------------------------------------------------- Settings → Telegram pages


def test_pages_add_an_account_log_it_in_and_show_its_state(
    fake_telegram, listeners, client, admin_user
):
    from django.urls import reverse

    client.force_login(admin_user)
    form = {
        "name": "Sales",
        "phone": "+49 171 0000001",
        "api_id": "abc",
        "api_hash": "0123456789abcdef0123456789abcdef",
        "is_active": "on",
    }
    page = client.post(reverse("telegram_create"), form).content.decode()
    assert "api_id must be a positive whole number" in page
    assert not TelegramAccount.objects.exists()

    response = client.post(reverse("telegram_create"), {**form, "api_id": "28906808"})
    account = TelegramAccount.objects.get()
    assert response["Location"] == reverse("telegram_login", args=[account.pk])  # no session yet
    assert account.api_id == 28906808

    url = reverse("telegram_login", args=[account.pk])
    client.post(url, {"step": "send_code"})
    fake_telegram.script["sign_in_errors"] = [PhoneCodeInvalidError(request=None)]
    page = client.post(url, {"step": "code", "code": "11111"}).content.decode()
    assert "The code is not right" in page
    done = client.post(url, {"step": "code", "code": "22222"})
    assert done["Location"] == reverse("telegram_accounts")
    wait_for(lambda: state(account).status == Status.CONNECTED)

    page = client.get(reverse("telegram_accounts")).content.decode()
    assert f'id="telegram-{account.pk}"' in page and "Connected" in page
    assert (
        "authorised-session" not in page and "0123456789abcdef" not in page
    )  # secrets never shown


def test_agents_see_the_accounts_but_cannot_manage_them(client, agent_user, company):
    from django.urls import reverse

    account = TelegramAccountFactory(company=company)
    client.force_login(agent_user)
    assert client.get(reverse("telegram_accounts")).status_code == 200
    for name in ("telegram_edit", "telegram_login", "telegram_delete"):
        assert client.get(reverse(name, args=[account.pk])).status_code == 403
