"""The email import under failure and odd input: quarantine (a real database constraint makes
the storage of one mail fail, through Dovecot and the poll), the quarantine on the account's
page (retry, raw download, tenant scoping), Hypothesis-made MIME trees through the whole
importer (parse and store), merging a late original's conversations, delivery reports on the
message they report on, and NUL bytes."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels_integrations.email import imap, importer, quarantine
from channels_integrations.email.parsing import parse_mail
from channels_integrations.models import EmailAccount, EmailMessageRecord, EmailQuarantine
from messaging.models import Attachment, Conversation, Message

from .factories import EmailAccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def mail(message_id, body="Hello", *, subject="Question", sender="Ann <ann@example.org>", extra=""):
    return (
        f"From: {sender}\r\nTo: help@acme.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n{extra}\r\n"
        f"{body}\r\n"
    ).encode()


@pytest.fixture
def mailbox(dovecot):
    return dovecot.add_user()


@pytest.fixture
def account(company, dovecot, mailbox):
    user, password = mailbox
    return EmailAccountFactory(company=company, **dovecot.account_fields(user, password))


@pytest.fixture
def poison():
    """A real database constraint that refuses any message whose body says POISON."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE messaging_message ADD CONSTRAINT test_no_poison "
            "CHECK (position('POISON' in body) = 0)"
        )

    def lift():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks pending
            cursor.execute("ALTER TABLE messaging_message DROP CONSTRAINT test_no_poison")

    return lift


def poll(account):
    result = imap.poll_account(account.pk)
    account.refresh_from_db()
    return result


# ---------------------------------------------------------------- quarantine


def test_a_mail_the_database_refuses_is_quarantined_once_shown_and_retried(
    account, dovecot, mailbox, poison, client, admin_user, other_company
):
    bad = mail("bad.2@example.org", "This one says POISON.")
    dovecot.deliver(*mailbox, mail("ok.1@example.org"), bad, mail("ok.3@example.org"))
    result = poll(account)
    assert result == {"found": 3, "imported": 2, "known": 0, "quarantined": 1}
    [item] = EmailQuarantine.objects.all()
    assert (item.uid, item.message_id, item.size) == (2, "bad.2@example.org", len(bad))
    assert "IntegrityError" in item.reason and "test_no_poison" in item.reason
    assert "POISON" not in item.reason  # the DETAIL quoting the row is left out
    assert bytes(item.raw).replace(b"\r\n", b"\n") == bad.replace(b"\r\n", b"\n")
    assert account.status == "warning" and account.messages_imported == 2

    # The next poll passes it by: not fetched, not recorded again.
    assert poll(account) == {"found": 0, "imported": 0, "known": 0, "quarantined": 0}
    assert EmailQuarantine.objects.count() == 1 and account.status == "warning"

    # The account's page lists it, with retry and the raw download.
    client.force_login(admin_user)
    page = client.get(reverse("email_accounts")).content.decode()
    assert 'data-quarantine-count="1"' in page and "1 mail could not be imported" in page
    assert '<span class="pill status-warning">Polling; some mails not imported</span>' in page
    assert 'class="pill status-ok"' not in page
    assert "bad.2@example.org" in page and "UID 2" in page
    retry_url = reverse("email_quarantine_retry", args=[account.pk, item.pk])
    raw_url = reverse("email_quarantine_raw", args=[account.pk, item.pk])
    assert retry_url in page and raw_url in page
    raw = client.get(raw_url)
    assert raw.status_code == 200 and raw["Content-Type"] == "message/rfc822"
    assert b"This one says POISON." in raw.content

    # Another company's admin: 404 for both, as for a missing one.
    stranger = UserFactory(company=other_company, role="admin", username="mallory")
    client.force_login(stranger)
    assert client.get(raw_url).status_code == 404
    assert client.post(retry_url).status_code == 404
    other_account = EmailAccountFactory(company=other_company)
    assert (
        client.get(reverse("email_quarantine_raw", args=[other_account.pk, item.pk])).status_code
        == 404
    )
    assert EmailQuarantine.objects.filter(pk=item.pk).exists()

    # Retry while the cause is still there: kept, one more attempt, the reason shown.
    client.force_login(admin_user)
    page = client.post(retry_url, follow=True).content.decode()
    assert "still could not be imported" in page
    item.refresh_from_db()
    assert item.attempts == 2

    # Fixed: retry imports it once; the account is OK again.
    poison()
    page = client.post(retry_url, follow=True).content.decode()
    assert "Mail UID 2 imported." in page
    assert not EmailQuarantine.objects.exists()
    assert Message.objects.get(external_id="bad.2@example.org").body == "This one says POISON."
    assert Message.objects.filter(external_id="bad.2@example.org").count() == 1
    account.refresh_from_db()
    assert account.status == "ok" and account.messages_imported == 3
    page = client.get(reverse("email_accounts")).content.decode()
    assert '<span class="pill status-ok">OK</span>' in page and "status-warning" not in page
    assert poll(account)["imported"] == 0 and account.status == "ok"


def test_an_agent_sees_the_quarantine_but_cannot_retry_or_download(account, client, agent_user):
    item = EmailQuarantine.objects.create(
        account=account, uidvalidity=1, uid=7, message_id="x@y", size=3, reason="R", raw=b"abc"
    )
    client.force_login(agent_user)
    page = client.get(reverse("email_accounts")).content.decode()
    assert "x@y" in page
    assert reverse("email_quarantine_raw", args=[account.pk, item.pk]) not in page
    assert client.get(reverse("email_quarantine_raw", args=[account.pk, item.pk])).status_code in (
        302,
        403,
    )


# ---------------------------------------------------------------- the importer never raises


def _part(ctype, charset, encoding, body):
    return (
        f"Content-Type: {ctype}; charset={charset}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode() + body


MIME_TREE = st.recursive(
    st.builds(
        _part,
        st.sampled_from(
            ["text/plain", "text/html", "application/pdf", "image/png", "message/rfc822",
             "message/delivery-status", "text/rfc822-headers", "x/y", "multipart/mixed"]
        ),
        st.sampled_from(["utf-8", "iso-8859-1", "gb2312", "koi8-r", "no-such", "utf-16", ""]),
        st.sampled_from(["base64", "quoted-printable", "7bit", "8bit", "x-uuencode", "bogus"]),
        st.binary(max_size=120) | st.sampled_from([b"a\x00b", "Привет".encode("koi8-r")]),
    ),
    lambda children: st.builds(
        lambda kind, parts, boundary: (
            f'Content-Type: multipart/{kind}; boundary="{boundary}"\r\n\r\n'.encode()
            + b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
            + f"--{boundary}--\r\n".encode()
        ),
        st.sampled_from(["mixed", "alternative", "related", "report", "digest", "signed"]),
        st.lists(children, max_size=4),
        st.sampled_from(["b1", "b2", "=?x?="]),
    ),
    max_leaves=10,
)  # fmt: skip
HEADER_VALUE = st.binary(max_size=40) | st.sampled_from(
    [b"=?utf-8?q?M=C3=BCller=2C_Hans?= <h@x.de>", "Заказ".encode(), b"\xff\xfe\x00", b"a\x00b",
     b"=?gb2312?b?suLK1A==?=", b"=?unknown?q?=FF?=", b"Tue, 01 Jan 3609 10:00:00 +0000"]
)  # fmt: skip
HEADERS = st.lists(
    st.tuples(
        st.sampled_from([b"From", b"To", b"Cc", b"Subject", b"References", b"In-Reply-To",
                         b"Date", b"Thread-Index", b"Thread-Topic", b"Content-Disposition"]),
        HEADER_VALUE,
    ),
    max_size=8,
)  # fmt: skip


@pytest.fixture
def quiet_account(company):
    return EmailAccountFactory(company=company, address="help@acme.test")


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(headers=HEADERS, body=MIME_TREE, number=st.integers(0, 10**9))
def test_generated_mime_trees_are_stored_never_raise_nor_quarantine(
    quiet_account, headers, body, number
):
    head = b"".join(name + b": " + value.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
                    for name, value in headers)  # fmt: skip
    raw = head + f"Message-ID: <gen{number}@hypothesis>\r\n".encode() + body
    parse_mail(raw, attachment_limit=100)  # never raises
    outcome = importer.import_batch(quiet_account, [(number, raw, timezone.now())], 1)
    assert outcome["quarantined"] == 0, EmailQuarantine.objects.values_list("reason", flat=True)
    assert outcome["imported"] + outcome["known"] == 1


def test_nul_bytes_and_raw_8bit_headers_are_stored(quiet_account):
    raw = (
        b"From: \xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd <ivan@example.ru>\r\nSubject: a\x00b \xff\r\n"
        b"Message-ID: <nul.1@example.ru>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"before\x00after\r\n"
    )
    assert importer.import_batch(quiet_account, [(1, raw, None)], 1)["imported"] == 1
    message = Message.objects.get(external_id="nul.1@example.ru")
    assert message.body == "beforeafter" and message.sender_name == "Иван"
    assert message.metadata["subject"].startswith("ab ")


# ---------------------------------------------------------------- threading


def test_a_late_original_merges_the_conversation_its_replies_opened(quiet_account):
    now = timezone.now()
    first = mail("start.1@example.org", "First question.", subject="Warranty")
    reply = mail("w.3@example.org", "Serial 4711.", subject="Re: Kettle",
                 extra="In-Reply-To: <w.2@example.org>\r\n")  # fmt: skip
    original = mail("w.2@example.org", "The kettle broke.", subject="Kettle",
                    extra="References: <start.1@example.org>\r\n")  # fmt: skip
    importer.import_batch(quiet_account, [(1, first, now)], 1)
    importer.import_batch(quiet_account, [(2, reply, now)], 1)
    started = Conversation.objects.get(messages__external_id="start.1@example.org")
    apart = Conversation.objects.get(messages__external_id="w.3@example.org")
    assert started != apart  # its In-Reply-To is not known yet
    Conversation.objects.filter(pk=apart.pk).update(assignee=None, unread_count=5)

    importer.import_batch(quiet_account, [(3, original, now)], 1)
    assert not Conversation.objects.filter(pk=apart.pk).exists()
    merged = Conversation.objects.get(pk=started.pk)
    history = list(
        merged.messages.order_by("created_at", "id").values_list("external_id", flat=True)
    )
    assert history == ["start.1@example.org", "w.2@example.org", "w.3@example.org"]
    assert merged.unread_count == 1 + 5 + 1
    assert set(
        EmailMessageRecord.objects.filter(account=quiet_account).values_list(
            "conversation_id", flat=True
        )
    ) == {merged.pk}


def _our_sent_reply(account, asked: str, reply_id: str) -> tuple:
    """A customer's mail `asked` imported and our reply `reply_id` sent in its conversation:
    (the conversation, our message)."""
    importer.import_batch(account, [(1, mail(asked), None)], 1)
    conversation = Conversation.objects.get()
    ours = Message.objects.create(
        conversation=conversation, direction="out", external_id=reply_id,
        body="Our answer", status="sent",
    )  # fmt: skip
    importer.record_sent(account.pk, conversation.pk, reply_id)
    return conversation, ours


def test_a_bounce_lands_on_the_message_it_reports_on(quiet_account):
    conversation, ours = _our_sent_reply(
        quiet_account, "ask.1@example.org", "our-reply.9@acme.test"
    )
    bounce = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: help@acme.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn.1@mx.example.org>\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
        b"\r\nFinal-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: help@acme.test\r\n"
        b"Subject: Re: Question\r\nMessage-ID: <our-reply.9@acme.test>\r\n\r\n--b--\r\n"
    )
    importer.import_batch(quiet_account, [(2, bounce, None)], 1)
    report = Message.objects.get(external_id="dsn.1@mx.example.org")
    assert report.conversation_id == conversation.pk
    assert report.metadata["report"]["status"] == "5.1.1" and report.metadata["auto_reply"]
    files = sorted(Attachment.objects.filter(message=report).values_list("filename", flat=True))
    assert files == ["delivery-status.txt", "original-headers.txt"]
    ours.refresh_from_db()
    [noted] = ours.metadata["reports"]
    assert noted["action"] == "failed" and noted["status"] == "5.1.1"
    assert noted["recipient"] == "ann@example.org"


def test_a_read_report_lands_on_the_message_it_reports_on(quiet_account):
    conversation, ours = _our_sent_reply(
        quiet_account, "ask.2@example.org", "our-reply.10@acme.test"
    )
    # Only the report's Original-Message-ID names our mail: no References, no original part.
    mdn = (
        b"From: Ann <ann@example.org>\r\nTo: help@acme.test\r\nSubject: Read: Re: Question\r\n"
        b"Message-ID: <mdn.1@example.org>\r\n"
        b"Content-Type: multipart/report; report-type=disposition-notification; "
        b'boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
        b"--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Reporting-UA: mail.example.org; Thunderbird\r\n"
        b"Final-Recipient: rfc822; ann@example.org\r\n"
        b"Original-Message-ID: <our-reply.10@acme.test>\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--b--\r\n"
    )
    importer.import_batch(quiet_account, [(2, mdn, None)], 1)
    report = Message.objects.get(external_id="mdn.1@example.org")
    assert report.conversation_id == conversation.pk
    assert report.metadata["report"]["type"] == "disposition-notification"
    assert report.metadata["auto_reply"]
    ours.refresh_from_db()
    [noted] = ours.metadata["reports"]
    assert noted["type"] == "disposition-notification"
    assert noted["disposition"] == "manual-action/MDN-sent-manually; displayed"
    assert noted["message_id"] == "mdn.1@example.org"


def test_a_future_date_falls_back_to_the_server_date(quiet_account):
    arrived = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    raw = mail("f.1@example.org").replace(
        b"Mon, 23 Nov 2026 09:00:00 +0100", b"Tue, 01 Jan 3609 10:00:00 +0000"
    )
    importer.import_batch(quiet_account, [(1, raw, arrived)], 1)
    assert Conversation.objects.get().last_message_at == arrived
    assert EmailAccount.objects.filter(pk=quiet_account.pk).exists()


@pytest.mark.parametrize(
    "arrived", [None, datetime(3000, 1, 1, tzinfo=UTC), datetime(1970, 1, 2, tzinfo=UTC)]
)
def test_an_absurd_date_without_a_sane_server_date_falls_back_to_the_receive_time(
    quiet_account, arrived
):
    raw = mail("f.2@example.org").replace(
        b"Mon, 23 Nov 2026 09:00:00 +0100", b"Tue, 01 Jan 3609 10:00:00 +0000"
    )
    before = timezone.now()
    importer.import_batch(quiet_account, [(1, raw, arrived)], 1)
    after = timezone.now()
    assert before <= Conversation.objects.get().last_message_at <= after
    assert before <= Message.objects.get(external_id="f.2@example.org").created_at <= after


def test_subject_threading_joins_only_within_the_window(quiet_account):
    def conversation_of(message_id):
        return Conversation.objects.get(messages__external_id=message_id)

    def last_message(conversation, days_ago):
        at = timezone.now() - timedelta(days=days_ago)
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=at)

    def receive(uid, message_id, subject):
        importer.import_batch(quiet_account, [(uid, mail(message_id, subject=subject), None)], 1)

    receive(1, "s.1@example.org", "Question")
    first = conversation_of("s.1@example.org")
    last_message(first, importer.SUBJECT_THREAD_DAYS + 1)
    receive(2, "s.2@example.org", "Re: Question")
    second = conversation_of("s.2@example.org")
    assert second != first  # its last mail is too old: a new conversation

    last_message(second, importer.SUBJECT_THREAD_DAYS - 1)
    receive(3, "s.3@example.org", "RE: Question")
    assert conversation_of("s.3@example.org") == second  # within the window: it joins


def test_of_two_conversations_at_the_same_second_a_reply_joins_the_later_one(quiet_account):
    """INTERNALDATE has whole seconds: two threads of one sender with the same subject often
    end at the same time. A reply by subject joins the one created last, every time (it
    depended on the order PostgreSQL returned the tie in)."""
    same_second = timezone.now().replace(microsecond=0)
    for uid, message_id in ((1, "t.1@example.org"), (2, "t.2@example.org")):
        raw = mail(message_id, subject="Invoice").replace(b"Date: Mon, 23 Nov 2026", b"X-Old:")
        importer.import_batch(quiet_account, [(uid, raw, same_second)], 1)
    first, second = Conversation.objects.order_by("id")
    assert first.last_message_at == second.last_message_at == same_second
    # The older one's row written last, so a scan in physical order meets it first.
    Conversation.objects.filter(pk=first.pk).update(last_message_at=same_second)
    reply = mail("t.3@example.org", subject="Re: Invoice")
    importer.import_batch(quiet_account, [(3, reply, None)], 1)
    assert Conversation.objects.get(messages__external_id="t.3@example.org") == second


def test_a_retried_mail_keeps_the_server_date(quiet_account, poison):
    arrived = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    raw = mail("late.9@example.org", "POISON").replace(
        b"Mon, 23 Nov 2026 09:00:00 +0100", b"Tue, 01 Jan 3609 10:00:00 +0000"
    )
    assert importer.import_batch(quiet_account, [(9, raw, arrived)], 1)["quarantined"] == 1
    [item] = EmailQuarantine.objects.all()
    assert item.arrived_at == arrived
    poison()
    assert quarantine.retry(item) == {"ok": True, "imported": True}
    # Dated by the INTERNALDATE, as the first import would have, not by the quarantine row.
    assert Conversation.objects.get().last_message_at == arrived
