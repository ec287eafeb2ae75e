"""The email channel against real servers: Dovecot (IMAP, Debian's dovecot-imapd) started by
the suite on a loopback port with a temporary configuration, and an SMTP server (aiosmtpd) on
loopback. Nothing is replaced: IMAPClient, smtplib, PostgreSQL, Redis are all real.

The corpus (tests/mail_corpus) holds a plain mail, an HTML-only one, a multipart with
attachments, a Latin-1 one with encoded-word headers, a reply whose In-Reply-To is unknown but
whose References are not, a malformed one, an auto-reply and a bulk mail.
"""

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels_integrations.email import imap, tasks
from channels_integrations.email.parsing import parse_mail
from channels_integrations.models import EmailAccount, EmailMessageRecord
from crm.services import delete_in_database
from messaging.models import Attachment, Conversation, Message

from .factories import EmailAccountFactory
from .mailserver import SmtpSink, corpus

pytestmark = pytest.mark.django_db
CORPUS = corpus()


@pytest.fixture
def mailbox(dovecot):
    user, password = dovecot.add_user()
    return user, password


@pytest.fixture
def smtp(mailbox):
    with SmtpSink(login=mailbox) as sink:
        yield sink


@pytest.fixture
def account(company, dovecot, mailbox, smtp):
    user, password = mailbox
    fields = dovecot.account_fields(
        user, password, display_name="Acme Support", smtp_port=smtp.port, poll_interval_seconds=60
    )
    return EmailAccountFactory(company=company, **fields)


def deliver(dovecot, mailbox, *names):
    dovecot.deliver(*mailbox, *(CORPUS[name] for name in names))


def poll(account):
    result = imap.poll_account(account.pk)
    account.refresh_from_db()
    return result


def inbound(message_id) -> Message:
    return Message.objects.get(external_id=message_id)


# ---------------------------------------------------------------- import


def test_the_corpus_is_imported_once_and_the_mailbox_untouched(account, dovecot, mailbox, caplog):
    deliver(dovecot, mailbox, *CORPUS)
    result = poll(account)
    assert result == {"found": 8, "imported": 8, "known": 0, "quarantined": 0}
    assert account.status == "ok" and account.messages_imported == 8 and account.last_success_at

    plain = inbound("order1042.1@example.org")
    assert plain.body.startswith("Hello,\nmy order 1042 has not arrived yet.")
    assert plain.conversation.subject == "Order 1042 has not arrived"
    assert plain.conversation.client.email == "maria@example.org"
    assert plain.sender_name == "Maria Lopez"

    html = inbound("html-only.7@shop.example")
    assert "Hello team" in html.body.replace("\n", " ") and "the offer" in html.body
    assert "<script" not in html.metadata["html"] and "onclick" not in html.metadata["html"]
    assert "<b>team</b>" in html.metadata["html"]
    assert html.metadata["subject"] == "Grüße aus München"

    photos = inbound("box-photos.3@example.net")
    assert photos.body == "The box arrived crushed, photos attached."
    files = {a.filename: a for a in Attachment.objects.filter(message=photos)}
    assert set(files) == {"box.png", "invoice.pdf"}
    assert files["box.png"].content_type == "image/png" and files["box.png"].kind == "image"
    assert files["box.png"].stored and files["box.png"].file.read().startswith(b"\x89PNG")
    assert files["invoice.pdf"].size == len(files["invoice.pdf"].file.read())

    latin = inbound("latin1.4@example.de")
    assert latin.body == "Können Sie die Rückgabe bestätigen? Grüße, René"
    assert latin.sender_name == "René Müller" and latin.metadata["subject"] == "Rückgabe möglich?"

    reply = inbound("order1042.2@example.org")  # its In-Reply-To is unknown; References are not
    assert reply.conversation_id == plain.conversation_id

    broken = Message.objects.get(metadata__malformed=True)
    assert "What can be read" in broken.body

    assert inbound("ooo.7@example.org").metadata["auto_reply"] is True
    assert inbound("deals.8@shop.example").metadata["bulk"] is True

    # Polling again finds nothing new and stores nothing twice.
    assert poll(account) == {"found": 0, "imported": 0, "known": 0, "quarantined": 0}
    assert Message.objects.count() == 8
    # Read-only select and BODY.PEEK: not one mail was marked \\Seen.
    client = dovecot.client(*mailbox)
    client.select_folder("INBOX", readonly=True)
    flags = client.get_flags(client.search(["ALL"]))
    client.logout()
    assert all(b"\\Seen" not in value for value in flags.values())

    for step in ("processing account", f"connecting to IMAP 127.0.0.1:{account.imap_port}",
                 "connection established", "login ok", "inbox selected", "found 8 new",
                 "imported 8", "connection closed"):  # fmt: skip
        assert f"account={account.pk} {step}" in caplog.text
    assert account.password not in caplog.text and "has not arrived yet" not in caplog.text


def test_an_attachment_over_the_limit_is_recorded_not_stored(account, dovecot, mailbox, settings):
    settings.ATTACHMENT_MAX_BYTES = 70  # the PNG is 68 bytes, the PDF 82
    deliver(dovecot, mailbox, "03_attachments")
    poll(account)
    files = {a.filename: a for a in Attachment.objects.all()}
    assert files["box.png"].stored and not files["invoice.pdf"].stored
    assert files["invoice.pdf"].size == 82


def test_a_mail_in_the_mailbox_twice_keeps_one_copy_of_its_files(account, dovecot, mailbox):
    # The same mail (one Message-ID) under two UIDs, as a copy within the folder leaves it.
    deliver(dovecot, mailbox, "03_attachments", "03_attachments")
    poll(account)
    assert Message.objects.count() == 1
    assert sorted(a.filename for a in Attachment.objects.all()) == ["box.png", "invoice.pdf"]


def test_a_changed_uidvalidity_resyncs_without_duplicates(account, dovecot, mailbox):
    deliver(dovecot, mailbox, "01_plain", "04_latin1")
    poll(account)
    old = account.uidvalidity
    dovecot.set_uidvalidity(mailbox[0], old + 1000)
    deliver(dovecot, mailbox, "05_reply_references")
    result = poll(account)
    assert account.uidvalidity == old + 1000
    assert result["imported"] == 1 and result["known"] == 2
    assert Message.objects.count() == 3


def test_a_deleted_conversation_never_comes_back(account, dovecot, mailbox):
    deliver(dovecot, mailbox, "01_plain", "05_reply_references")
    poll(account)
    conversation = Conversation.objects.get()
    delete_in_database(conversation)  # an agent deleted it
    EmailAccount.objects.filter(pk=account.pk).update(uidvalidity=None, last_uid=0)  # full resync
    result = poll(account)
    assert result["imported"] == 0 and result["known"] == 2
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_a_wrong_password_shows_the_auth_error_and_backs_off(account, caplog):
    EmailAccount.objects.filter(pk=account.pk).update(password="not-the-password")
    account.refresh_from_db()
    before = timezone.now()
    result = poll(account)
    assert "IMAP login failed" in result["error"]
    assert account.status == "error" and account.consecutive_failures == 1
    assert "IMAP login failed" in account.last_error and "Retrying at" in account.last_error
    assert account.next_poll_at > before + timedelta(seconds=account.poll_interval_seconds)
    assert "not-the-password" not in caplog.text
    poll(account)
    first_wait = account.next_poll_at
    assert account.consecutive_failures == 2 and first_wait > before + timedelta(seconds=150)
    assert account.pk not in imap.due_accounts()  # backing off: not polled meanwhile


def test_an_unreachable_server_says_so(account, dovecot):
    EmailAccount.objects.filter(pk=account.pk).update(imap_port=9)  # nothing listens there
    account.refresh_from_db()
    assert "Could not connect to the IMAP server" in poll(account)["error"]


@pytest.mark.django_db(transaction=True)
def test_dovecot_restarted_mid_poll_loses_and_doubles_nothing(
    account, dovecot, mailbox, monkeypatch
):
    """300 mails (two fetch batches of 200 and 100); Dovecot is stopped once the first
    batch is stored, so the poll breaks between the batches."""
    mails = [
        CORPUS["01_plain"].replace(b"order1042.1@example.org", f"bulk{n}@example.org".encode())
        for n in range(300)
    ]
    dovecot.deliver(*mailbox, *mails)
    batches = []
    original = imap.import_batch

    def import_then_crash(*args, **kwargs):
        outcome = original(*args, **kwargs)
        batches.append(outcome)
        if len(batches) == 1:
            dovecot.stop()
        return outcome

    monkeypatch.setattr(imap, "import_batch", import_then_crash)
    first = poll(account)
    assert "error" in first and account.status == "error"
    assert first["imported"] == 200 and Message.objects.count() == 200
    dovecot.start()
    second = poll(account)
    assert "error" not in second, second
    assert Message.objects.count() == 300
    assert EmailMessageRecord.objects.filter(account=account).count() == 300


# ---------------------------------------------------------------- replies


def test_a_reply_goes_out_by_smtp_in_the_thread_and_answers_join_it(
    account,
    dovecot,
    mailbox,
    smtp,
    api_for,
    agent_user,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    deliver(dovecot, mailbox, "01_plain", "05_reply_references")
    poll(account)
    conversation = Conversation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(agent_user).post(
            f"/api/v1/conversations/{conversation.pk}/messages/",
            {"body": "It left our warehouse today."},
            format="json",
        )
    assert response.status_code == 201
    [sent] = smtp.messages
    assert sent["From"] == "Acme Support <help@acme.test>"
    assert sent["To"] == "maria@example.org"
    assert sent["Subject"] == "Re: Order 1042 has not arrived"
    assert sent["In-Reply-To"] == "<order1042.2@example.org>"
    assert "<order1042.1@example.org>" in sent["References"]
    assert sent["References"].split()[-1] == "<order1042.2@example.org>"
    text = sent.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("It left our warehouse today.\n")
    assert "Maria Lopez <maria@example.org> wrote:\n> Any news?" in text  # the answered mail
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "sent" and f"<{message.external_id}>" == sent["Message-ID"]

    # Maria answers our mail (her mail program sets only In-Reply-To): same conversation.
    answer = (
        b"From: Maria Lopez <maria@example.org>\r\nTo: help@acme.test\r\n"
        b"Subject: Re: Re: Order 1042 has not arrived\r\nMessage-ID: <order1042.3@example.org>\r\n"
        b"In-Reply-To: " + sent["Message-ID"].encode() + b"\r\n\r\nThank you!\r\n"
    )
    dovecot.deliver(*mailbox, answer)
    poll(account)
    assert inbound("order1042.3@example.org").conversation_id == conversation.pk


def test_an_smtp_refusal_fails_the_message_with_the_reason(
    account,
    dovecot,
    mailbox,
    smtp,
    api_for,
    agent_user,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    deliver(dovecot, mailbox, "01_plain")
    poll(account)
    smtp.login = ("someone", "else")
    conversation = Conversation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(agent_user).post(
            f"/api/v1/conversations/{conversation.pk}/messages/", {"body": "Hi"}, format="json"
        )
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "failed" and "SMTP login failed" in message.error
    assert smtp.messages == []


def test_test_connection_reports_each_side_in_words(account, admin_api):
    url = f"/api/v1/email/accounts/{account.pk}/test-connection/"
    good = admin_api.post(url).json()
    assert good["imap"]["ok"] and good["smtp"]["ok"]
    assert "INBOX holds 0 messages" in good["imap"]["detail"]
    EmailAccount.objects.filter(pk=account.pk).update(password="wrong")
    bad = admin_api.post(url).json()
    assert not bad["imap"]["ok"] and "IMAP login failed" in bad["imap"]["detail"]
    assert not bad["smtp"]["ok"] and "SMTP login failed" in bad["smtp"]["detail"]


# ---------------------------------------------------------------- dispatch, IDLE


def test_beat_queues_each_due_account_once(account, company, monkeypatch):
    later = EmailAccountFactory(company=company, next_poll_at=timezone.now() + timedelta(hours=1))
    queued = []
    monkeypatch.setattr(tasks.poll_email_account, "delay", queued.append)
    assert imap.dispatch_polls() == [account.pk]
    assert imap.dispatch_polls() == []  # already queued (or running): not again
    imap.poll_finished(account.pk)
    assert queued == [account.pk] and later.pk not in queued


@pytest.mark.django_db(transaction=True)
def test_idle_brings_new_mail_in_at_once(account, dovecot, mailbox, monkeypatch, settings):
    settings.CONNECTION_LEASE_SECONDS = 3.0
    EmailAccount.objects.filter(pk=account.pk).update(use_idle=True)
    monkeypatch.setattr(
        tasks.poll_email_account,
        "delay",
        lambda account_id: threading.Thread(
            target=lambda: (imap.poll_account(account_id), connection.close())
        ).start(),
    )

    def run():
        try:
            imap.run_idle(account.pk)
        finally:
            connection.close()

    listener = threading.Thread(target=run, daemon=True)
    listener.start()
    # The listener polls once when its IDLE opens (what came while none was open); after that,
    # only IDLE can bring new mail in within the test's seconds (no periodic poll runs here).
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and not EmailAccount.objects.get(pk=account.pk).last_success_at
    ):
        time.sleep(0.05)
    time.sleep(0.5)
    deliver(dovecot, mailbox, "01_plain")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Message.objects.exists():
        time.sleep(0.1)
    assert Message.objects.filter(external_id="order1042.1@example.org").exists()
    EmailAccount.objects.filter(pk=account.pk).update(use_idle=False)  # stops the listener
    listener.join(timeout=10)
    assert not listener.is_alive()


@pytest.mark.django_db(transaction=True)
def test_idle_that_keeps_failing_tells_the_admins_once_until_it_works_again(
    account, company, dovecot, monkeypatch, settings
):
    """One IDLE drop is nothing (servers end IDLE, polling goes on); three failed connects in
    a row are told to the admins once, and the episode ends when IDLE is up again."""
    from accounts.models import Role
    from notifications.models import ConnectionAlert, Notification

    from .factories import UserFactory

    admin = UserFactory(company=company, role=Role.ADMIN)
    settings.CONNECTION_LEASE_SECONDS = 3.0
    settings.CONNECTION_BACKOFF_BASE = 0.05
    settings.CONNECTION_BACKOFF_CAP = 0.1
    monkeypatch.setattr(tasks.poll_email_account, "delay", lambda account_id: None)
    # A port nobody listens on: each connect fails at once (a wrong password would not do:
    # Dovecot delays failed logins from an address more after each, up to 15 s).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    EmailAccount.objects.filter(pk=account.pk).update(use_idle=True, imap_port=closed_port)
    failures = []
    real = imap.idle_failed
    monkeypatch.setattr(imap, "idle_failed", lambda *args: (failures.append(args[2]), real(*args)))

    def run():
        try:
            imap.run_idle(account.pk)
        finally:
            connection.close()

    def told():
        return Notification.objects.filter(user=admin, kind="connection_failed")

    listener = threading.Thread(target=run, daemon=True)
    listener.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(failures) < 6:
            time.sleep(0.05)
        assert failures[:6] == [1, 2, 3, 4, 5, 6]  # failed connects in a row, counted
        [notification] = told()  # told once, at the third, not on each retry
        assert "connect" in notification.body.lower()
        assert ConnectionAlert.objects.filter(key=f"{imap.IDLE_KIND}:{account.pk}").exists()

        EmailAccount.objects.filter(pk=account.pk).update(imap_port=account.imap_port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and ConnectionAlert.objects.exists():
            time.sleep(0.05)
        assert not ConnectionAlert.objects.exists()  # IDLE is up: the episode is over
        assert told().count() == 1
    finally:
        EmailAccount.objects.filter(pk=account.pk).update(use_idle=False)  # stops the listener
        listener.join(timeout=15)
    assert not listener.is_alive()


# ---------------------------------------------------------------- the parser never raises


MIME_PART = st.recursive(
    st.builds(
        lambda ctype, charset, body, encoding: (
            (
                f"Content-Type: {ctype}; charset={charset}\r\n"
                f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
            ).encode()
            + body
        ),
        st.sampled_from(["text/plain", "text/html", "application/pdf", "image/png", "x/y", ""]),
        st.sampled_from(["utf-8", "iso-8859-1", "no-such", "utf-16", "", '"']),
        st.binary(max_size=200),
        st.sampled_from(["base64", "quoted-printable", "7bit", "8bit", "x-unknown"]),
    ),
    lambda children: st.builds(
        lambda parts, boundary: (
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
            + b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
            + f"--{boundary}--\r\n".encode()
        ),
        st.lists(children, max_size=4),
        st.sampled_from(["b1", "b2", "", "=?x?="]),
    ),
    max_leaves=8,
)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["From", "Subject", "Message-ID", "References", "In-Reply-To", "Date", "To",
                         "Auto-Submitted", "List-Id"]),
        st.text(max_size=60) | st.sampled_from(["=?utf-8?b?!!?=", "=?koi8-r?q?=FF?=", "<a@b> <", ""]),
    ),
    max_size=8,
)  # fmt: skip


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=2000))
def test_the_parser_survives_random_bytes(raw):
    mail = parse_mail(raw, attachment_limit=1000)
    assert mail.message_id


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=HEADERS, body=MIME_PART)
def test_the_parser_survives_random_mime(headers, body):
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("utf-8", "replace")
    mail = parse_mail(head + body, attachment_limit=50)
    assert mail.message_id and isinstance(mail.text, str)


# ---------------------------------------------------------------- Settings → Email pages


def test_pages_add_a_mailbox_test_it_and_show_its_state(
    account, client, admin_user, dovecot, mailbox
):
    from django.urls import reverse

    client.force_login(admin_user)
    form = {
        "address": "sales@acme.test", "imap_host": "127.0.0.1", "imap_port": dovecot.port,
        "smtp_host": "127.0.0.1", "smtp_port": 25, "smtp_security": "none",
        "username": mailbox[0], "password": "", "poll_interval_seconds": 5,
        "first_sync_days": 30, "is_active": "on",
    }  # fmt: skip
    page = client.post(reverse("email_create"), form).content.decode()
    assert "This field is required" in page  # the password, on create
    assert (
        "greater than or equal to 10"
        in client.post(reverse("email_create"), {**form, "password": mailbox[1]}).content.decode()
    )
    response = client.post(
        reverse("email_create"), {**form, "password": mailbox[1], "poll_interval_seconds": 60}
    )
    assert response["Location"] == reverse("email_accounts")
    created = EmailAccount.objects.get(address="sales@acme.test")

    tested = client.post(reverse("email_test", args=[account.pk]), follow=True).content.decode()
    assert "IMAP: Logged in; INBOX holds 0 messages." in tested
    deliver(dovecot, mailbox, "01_plain")
    poll(account)
    page = client.get(reverse("email_accounts")).content.decode()
    assert f'id="email-{account.pk}"' in page and f'id="email-{created.pk}"' in page
    assert "Messages imported</dt><dd>1<" in page
    assert mailbox[1] not in page  # the password is never shown


def test_a_mail_that_fails_to_store_does_not_block_the_rest_of_its_batch(
    account, dovecot, mailbox, monkeypatch, caplog
):
    """A batch fails as a whole; it is imported again mail by mail, so only the bad one is
    missing: it is quarantined (tests/test_email_import.py has the rest of its story), and the
    next poll neither imports the others twice nor tries it again by itself."""
    from channels_integrations.email import importer

    original = importer.ingest_inbound

    def failing_for_one(source, external_thread_id, external_message_id, *args, **kwargs):
        if external_message_id == "latin1.4@example.de":
            raise RuntimeError("disk full")
        return original(source, external_thread_id, external_message_id, *args, **kwargs)

    monkeypatch.setattr(importer, "ingest_inbound", failing_for_one)
    deliver(dovecot, mailbox, "01_plain", "04_latin1", "05_reply_references")
    result = poll(account)
    assert "error" not in result and result["imported"] == 2 and result["quarantined"] == 1
    assert not Message.objects.filter(external_id="latin1.4@example.de").exists()
    assert "batch failed; importing mail by mail" in caplog.text
    assert "could not be imported" in caplog.text
    assert (
        inbound("order1042.2@example.org").conversation
        == inbound("order1042.1@example.org").conversation
    )
    assert account.status == "warning"
    monkeypatch.setattr(importer, "ingest_inbound", original)
    again = poll(account)
    assert again == {"found": 0, "imported": 0, "known": 0, "quarantined": 0}


def test_unencrypted_smtp_is_refused_off_loopback(admin_api):
    payload = {
        "address": "sales@acme.test", "imap_host": "imap.example.org", "smtp_host": "smtp.example.org",
        "smtp_port": 25, "smtp_security": "none", "username": "sales", "password": "pw",
    }  # fmt: skip
    response = admin_api.post("/api/v1/email/accounts/", payload, format="json")
    assert response.status_code == 400 and "loopback only" in response.json()["smtp_security"][0]
    assert not EmailAccount.objects.exists()
    payload["smtp_security"] = "starttls"
    assert admin_api.post("/api/v1/email/accounts/", payload, format="json").status_code == 201
