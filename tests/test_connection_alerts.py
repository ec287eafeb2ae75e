"""Every kind of connection failure tells the company's admins (issue 18, "a connection of my
company failed"): stored and pushed as `notification.created`, once per failure episode
(never again on each retry) until the connection works again; never to agents, never to
another company. Driven through the real failure paths: a real Dovecot refusing the login,
a real SMTP server refusing it, a local Graph API answering error 190, and the neonize and
Telethon fakes at the adapter seam."""

import pytest

from accounts.models import Role
from channels_integrations.models import EmailAccount
from messaging import realtime
from messaging.models import Conversation, Message
from notifications import services as notifications
from notifications.models import ConnectionAlert, Notification

from .factories import UserFactory
from .processes import wait_for
from .test_email import CORPUS, account, mailbox, poll, smtp  # noqa: F401 (fixtures)
from .test_meta_channels import _reply, _write_in
from .test_meta_channels import page as meta_page  # noqa: F401
from .test_telegram import account as telegram_account  # noqa: F401
from .test_telegram import fake_telegram, listeners  # noqa: F401 (fixtures)
from .test_whatsapp_cloud import (  # noqa: F401 (fixtures)
    _graph_error,
    _graph_ok,
    _messages_path,
    _send,
    graph,
)
from .test_whatsapp_cloud import number as cloud_number  # noqa: F401
from .test_whatsapp_sessions import _start, fast_sessions, runners, web_number  # noqa: F401
from .whatsapp_fakes import FakeWebAdapter

KIND = "connection_failed"


@pytest.fixture
def people(company, other_company, admin_user):
    """The company's admin (alice), an agent, and another company's admin."""
    agent = UserFactory(company=company, role=Role.AGENT)
    stranger = UserFactory(company=other_company, role=Role.ADMIN)
    return admin_user, agent, stranger


@pytest.fixture
def pushed(monkeypatch):
    """Realtime events as published: [(event, data, groups)]."""
    sent = []
    monkeypatch.setattr(
        realtime,
        "publish_soon",
        lambda groups, payload: sent.append((payload["event"], payload["data"], groups)),
    )
    return sent


def told(user) -> list[Notification]:
    return list(Notification.objects.filter(user=user, kind=KIND).order_by("pk"))


def assert_only_admin_told(people, count: int = 1) -> Notification:
    admin, agent, stranger = people
    assert len(told(admin)) == count
    assert told(agent) == [] and told(stranger) == []
    return told(admin)[-1]


# ---------------------------------------------------------------- email: IMAP (real Dovecot)


@pytest.mark.django_db
def test_a_refused_imap_login_tells_the_admins_once_until_it_works_again(
    account,  # noqa: F811
    mailbox,  # noqa: F811
    people,
    pushed,
    django_capture_on_commit_callbacks,
):
    admin = people[0]
    EmailAccount.objects.filter(pk=account.pk).update(password="not-the-password")
    with django_capture_on_commit_callbacks(execute=True):
        assert "IMAP login failed" in poll(account)["error"]
    notification = assert_only_admin_told(people)
    assert "IMAP login failed" in notification.body and str(account) in notification.title
    assert notification.url == "/settings/email/"
    created = [(d, g) for e, d, g in pushed if e == "notification.created"]
    assert [(d["kind"], g) for d, g in created] == [(KIND, [f"user.{admin.pk}"])]
    assert created[0][0]["unread_count"] == 1

    # The poll backs off and fails again: the same episode, nobody is told twice.
    with django_capture_on_commit_callbacks(execute=True):
        poll(account)
    assert_only_admin_told(people, 1)

    # The right password: healthy again, and the next failure is a new episode.
    EmailAccount.objects.filter(pk=account.pk).update(password=mailbox[1])
    with django_capture_on_commit_callbacks(execute=True):
        assert "error" not in poll(account)
    assert not ConnectionAlert.objects.exists()
    EmailAccount.objects.filter(pk=account.pk).update(password="wrong-again")
    with django_capture_on_commit_callbacks(execute=True):
        poll(account)
    assert_only_admin_told(people, 2)


@pytest.mark.django_db
def test_an_unreachable_imap_host_tells_the_admins(
    account,  # noqa: F811
    people,
    django_capture_on_commit_callbacks,
):
    EmailAccount.objects.filter(pk=account.pk).update(imap_port=9)  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True):
        poll(account)
        poll(account)
    notification = assert_only_admin_told(people)
    assert "Could not connect to the IMAP server" in notification.body


@pytest.mark.django_db
def test_a_quarantined_mail_tells_the_admins(
    account,  # noqa: F811
    dovecot,
    mailbox,  # noqa: F811
    people,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from channels_integrations.email import importer

    original = importer.ingest_inbound

    def failing_for_one(source, external_thread_id, external_message_id, *args, **kwargs):
        if external_message_id == "latin1.4@example.de":
            raise RuntimeError("disk full")
        return original(source, external_thread_id, external_message_id, *args, **kwargs)

    monkeypatch.setattr(importer, "ingest_inbound", failing_for_one)
    dovecot.deliver(*mailbox, CORPUS["01_plain"], CORPUS["04_latin1"])
    with django_capture_on_commit_callbacks(execute=True):
        assert poll(account)["quarantined"] == 1
        poll(account)  # still waiting in quarantine: not told again
    notification = assert_only_admin_told(people)
    assert "quarantine" in notification.body


# ---------------------------------------------------------------- email: SMTP (real server)


@pytest.mark.django_db
def test_a_refused_smtp_login_tells_the_admins(
    account,  # noqa: F811
    dovecot,
    mailbox,  # noqa: F811
    smtp,  # noqa: F811
    people,
    api_for,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    dovecot.deliver(*mailbox, CORPUS["01_plain"])
    poll(account)
    smtp.login = ("someone", "else")
    conversation = Conversation.objects.get()
    api = api_for(people[1])  # an agent replies; the admins are told of the connection
    with django_capture_on_commit_callbacks(execute=True):
        for body in ("Hi", "Hi again"):
            api.post(
                f"/api/v1/conversations/{conversation.pk}/messages/", {"body": body}, format="json"
            )
    assert Message.objects.filter(status="failed").count() == 2
    notification = assert_only_admin_told(people)
    assert "SMTP login failed" in notification.body


# ---------------------------------------------------------------- WhatsApp Cloud (local Graph)


@pytest.mark.django_db
def test_an_invalid_cloud_token_tells_the_admins_once_until_a_send_works(
    graph,  # noqa: F811
    cloud_number,  # noqa: F811
    people,
    api_for,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    body, status = _graph_error(190, "Error validating access token", 401)
    graph.expect_request(_messages_path(), method="POST").respond_with_data(
        body, status=status, content_type="application/json"
    )
    api = api_for(people[1])
    with django_capture_on_commit_callbacks(execute=True):
        _send(api, cloud_number)
        _send(api, cloud_number, message="Again.")
    notification = assert_only_admin_told(people)
    assert "access token is invalid" in notification.body
    assert notification.title == f"The connection “{cloud_number}” failed"

    graph.clear()  # the admin updated the token: a send goes out, the episode ends
    graph.expect_request(_messages_path(), method="POST").respond_with_json(_graph_ok())
    with django_capture_on_commit_callbacks(execute=True):
        _send(api, cloud_number)
    assert not ConnectionAlert.objects.exists()
    graph.clear()
    graph.expect_request(_messages_path(), method="POST").respond_with_data(
        body, status=status, content_type="application/json"
    )
    with django_capture_on_commit_callbacks(execute=True):
        _send(api, cloud_number)
    assert_only_admin_told(people, 2)


# ---------------------------------------------------------------- Meta (local Graph far end)


@pytest.mark.django_db
def test_a_refused_meta_page_token_tells_the_admins(
    client,
    far_end,
    meta_page,  # noqa: F811
    people,
    api_for,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    page = meta_page
    conversation = _write_in(client, page, "messenger_text.json")  # the fake knows no token
    with django_capture_on_commit_callbacks(execute=True):
        _reply(api_for(people[1]), conversation)
        _reply(api_for(people[1]), conversation, body="Again.")
    notification = assert_only_admin_told(people)
    assert "access token" in notification.body and str(page) in notification.title


# ---------------------------------------------------------------- long-lived connections


@pytest.mark.django_db(transaction=True)
def test_a_whatsapp_session_logged_out_from_the_phone_tells_the_admins(
    runners,  # noqa: F811
    web_number,  # noqa: F811
    admin_api,
    people,
):
    _start(admin_api, web_number, wait_for_status="connected")
    FakeWebAdapter.instances[-1].callbacks.on_logged_out("logged out (reason 401)")
    wait_for(lambda: told(people[0]))
    notification = assert_only_admin_told(people)
    assert "QR" in notification.body and "401" in notification.body


@pytest.mark.django_db(transaction=True)
def test_an_admins_own_logout_is_no_failure(runners, web_number, admin_api, people):  # noqa: F811
    _start(admin_api, web_number, wait_for_status="connected")
    response = admin_api.post(f"/api/v1/whatsapp/numbers/{web_number.pk}/session/logout/")
    assert response.status_code == 200
    assert told(people[0]) == [] and not ConnectionAlert.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_whatsapp_session_that_keeps_failing_tells_the_admins_once(
    runners,  # noqa: F811
    web_number,  # noqa: F811
    admin_api,
    people,
):
    FakeWebAdapter.mode = "fail"  # dials fail like the real client without a route
    _start(admin_api, web_number, wait_for_status="failed")
    notification = assert_only_admin_told(people)  # three attempts, one notification
    assert "no such host" in notification.body


@pytest.mark.django_db(transaction=True)
def test_a_telegram_session_no_longer_authorised_tells_the_admins(
    listeners,  # noqa: F811
    telegram_account,  # noqa: F811
    people,
):
    from channels_integrations.models import TelegramAccount
    from channels_integrations.telegram import listener as telegram_listener

    from . import telegram_fakes as tg

    tg.FakeTelegramClient.script["authorized"] = False
    telegram_listener.supervise()
    wait_for(
        lambda: (
            TelegramAccount.objects.get(pk=telegram_account.pk).status
            == TelegramAccount.Status.LOGGED_OUT
        )
    )
    wait_for(lambda: told(people[0]))
    notification = assert_only_admin_told(people)
    assert "no longer authorised" in notification.body


# ---------------------------------------------------------------- the helper itself


@pytest.mark.django_db
def test_the_helper_is_generic_and_dedupes_per_connection(
    people, company, django_capture_on_commit_callbacks
):
    admin = people[0]
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notify_connection_failed(company.pk, "x:1", "Box one", "down")
        assert not notifications.notify_connection_failed(company.pk, "x:1", "Box one", "down")
        assert notifications.notify_connection_failed(company.pk, "x:2", lambda: "Box two", "off")
    assert [n.subject for n in told(admin)] == ["Box one", "Box two"]
    assert_only_admin_told(people, 2)
    notifications.connection_healthy("x:1")
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notify_connection_failed(company.pk, "x:1", "Box one", "down")
    # An admin who muted the kind is not told; the episode is still recorded once.
    notifications.update_preferences(admin, muted_kinds=[KIND])
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notify_connection_failed(company.pk, "x:3", "Box three", "down")
    assert len(told(admin)) == 3
