"""An email conversation looks and answers like email: replies carry the subject, Cc and Bcc
they were queued with, the mailbox's signature, the answered mail quoted and the thread's
References; an SMTP server that refuses a login is a permanent failure in clear words (on a
send and on "Test connection"), one that cannot be reached a temporary one. The sanitised HTML
of a mail is shown in a sandboxed frame from a view with its own strict CSP.

Real servers: Dovecot (IMAP) and aiosmtpd (SMTP) on loopback, as in tests/test_email.py.
"""

import pytest
from django.urls import reverse

from channels_integrations.email import imap
from channels_integrations.email.display import split_quoted
from channels_integrations.models import EmailAccount
from messaging.models import Conversation, Message
from messaging.tasks import deliver_message

from .factories import ConversationFactory, EmailAccountFactory, UserFactory
from .mailserver import SmtpSink
from .processes import free_port

pytestmark = pytest.mark.django_db

FIRST = b"""From: Maria Lopez <maria@example.org>
To: Acme Support <help@acme.test>
Subject: Order 1042 has not arrived
Date: Mon, 23 Nov 2026 09:12:00 +0100
Message-ID: <order1042.1@example.org>
Content-Type: text/plain; charset=utf-8

Hello,
my order 1042 has not arrived yet.
Maria
"""

SECOND = b"""From: Maria Lopez <maria@example.org>
To: Acme Support <help@acme.test>
Cc: Tom Lee <tom@example.org>, finance@example.org
Subject: Re: Order 1042 has not arrived
Date: Mon, 23 Nov 2026 11:00:00 +0100
Message-ID: <order1042.2@example.org>
In-Reply-To: <order1042.1@example.org>
References: <order1042.1@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

Any news? Tom from finance is in copy.

On Mon, 23 Nov 2026 at 09:30, Acme Support <help@acme.test> wrote:
> We are checking with the warehouse.
> Kind regards
--b1
Content-Type: text/html; charset=utf-8

<p>Any news? <b>Tom</b> from finance is in copy.</p>
<img src="https://images.example.test/logo.png" alt="Maria's logo">
<script>alert(1)</script>
<blockquote>We are checking with the warehouse.</blockquote>
--b1--
"""


@pytest.fixture
def mailbox(dovecot):
    return dovecot.add_user()


@pytest.fixture
def smtp(mailbox):
    with SmtpSink(login=mailbox) as sink:
        yield sink


def make_account(company, dovecot, mailbox, smtp_port, **extra):
    user, password = mailbox
    fields = dovecot.account_fields(
        user, password, display_name="Acme Support", smtp_port=smtp_port, **extra
    )
    return EmailAccountFactory(company=company, **fields)


@pytest.fixture
def account(company, dovecot, mailbox, smtp):
    return make_account(
        company, dovecot, mailbox, smtp.port, signature="Bob at Acme\nhttps://acme.test"
    )


def thread(account, dovecot, mailbox) -> Conversation:
    """Maria's two mails imported through IMAP: one conversation."""
    dovecot.deliver(*mailbox, FIRST, SECOND)
    imap.poll_account(account.pk)
    return Conversation.objects.get()


def reply(api, conversation, **data):
    return api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"body": "It left our warehouse today.", **data},
        format="json",
    )


# ---------------------------------------------------------------- what goes out


def test_a_reply_goes_out_with_subject_copies_signature_quote_and_references(
    account, dovecot, mailbox, smtp, api_for, agent_user, queued_sends
):
    conversation = thread(account, dovecot, mailbox)
    response = reply(
        api_for(agent_user),
        conversation,
        subject="Re: Order 1042 — shipped",
        cc=["Tom Lee <tom@example.org>", "finance@example.org"],
        bcc=["audit@acme.test"],
    )
    assert response.status_code == 201, response.content
    assert response.json()["mail"]["cc"] == ["tom@example.org", "finance@example.org"]
    message = Message.objects.get(pk=response.json()["id"])
    # The queued row is the truth: everything the send needs is stored on it.
    assert message.metadata["subject"] == "Re: Order 1042 — shipped"
    assert message.metadata["bcc"] == ["audit@acme.test"]
    assert message.metadata["signature"] == "Bob at Acme\nhttps://acme.test"
    assert message.metadata["in_reply_to"] == "order1042.2@example.org"
    deliver_message(message.pk)  # what the worker runs

    [sent] = smtp.messages
    [envelope] = smtp.envelopes
    assert sent["Subject"] == "Re: Order 1042 — shipped"
    assert sent["From"] == "Acme Support <help@acme.test>"
    assert sent["To"] == "maria@example.org"
    assert sent["Cc"] == "tom@example.org, finance@example.org"
    assert sent["Bcc"] is None and b"audit@acme.test" not in envelope.content
    assert envelope.rcpt_tos == [
        "maria@example.org",
        "tom@example.org",
        "finance@example.org",
        "audit@acme.test",
    ]
    assert sent["In-Reply-To"] == "<order1042.2@example.org>"
    assert sent["References"] == "<order1042.1@example.org> <order1042.2@example.org>"
    text = sent.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("It left our warehouse today.\n\n-- \nBob at Acme\nhttps://acme.test\n")
    assert (
        "\nOn Nov. 23, 2026, 10 a.m., Maria Lopez <maria@example.org> wrote:\n> Any news?" in text
    )
    assert "\n> > We are checking with the warehouse." in text  # her quote, quoted again
    html = sent.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert '<blockquote type="cite">Any news? Tom from finance' in html
    assert "-- <br>\nBob at Acme" in html
    message.refresh_from_db()
    assert message.status == "sent" and f"<{message.external_id}>" == sent["Message-ID"]


def test_a_reply_without_options_answers_with_re_subject(
    account, dovecot, mailbox, smtp, api_for, agent_user, queued_sends
):
    conversation = thread(account, dovecot, mailbox)
    response = reply(api_for(agent_user), conversation)
    assert response.status_code == 201
    deliver_message(response.json()["id"])
    [sent] = smtp.messages
    assert sent["Subject"] == "Re: Order 1042 has not arrived"
    assert sent["Cc"] is None and smtp.envelopes[0].rcpt_tos == ["maria@example.org"]


def test_bad_copies_are_a_400_naming_the_field_and_nothing_is_written(
    account, dovecot, mailbox, api_for, agent_user, queued_sends
):
    conversation = thread(account, dovecot, mailbox)
    api = api_for(agent_user)
    before = Message.objects.count()
    response = reply(api, conversation, cc=["tom@example.org", "not an address"])
    assert response.status_code == 400
    assert (
        "not an address" in response.json()["cc"][0] and "valid email" in response.json()["cc"][0]
    )
    response = reply(api, conversation, bcc=["ok@example.org", "x@"], cc=["bad"], body="")
    assert response.status_code == 400
    assert set(response.json()) == {"body", "cc", "bcc"}  # every bad field at once
    response = reply(api, conversation, bcc=["a@example.org\r\nBcc: evil@example.org"])
    assert response.status_code == 400 and "bcc" in response.json()
    response = reply(api, conversation, subject="x" * 501)
    assert response.status_code == 400 and "subject" in response.json()
    assert Message.objects.count() == before and queued_sends == []


def test_copies_on_a_whatsapp_conversation_are_refused_by_name(company, api_for, agent_user):
    conversation = ConversationFactory(company=company)
    response = reply(api_for(agent_user), conversation, cc=["tom@example.org"])
    assert response.status_code == 400 and list(response.json()) == ["cc"]
    assert not Message.objects.exists()


# ---------------------------------------------------------------- refusals in words


def test_a_server_refusing_auth_fails_the_send_for_good_in_words(
    company,
    dovecot,
    mailbox,
    api_for,
    agent_user,
    admin_api,
    queued_sends,
    django_capture_on_commit_callbacks,
):
    """aiosmtpd requiring TLS before AUTH, on a plain connection: it offers no AUTH and answers
    AUTH with 538. Before: "could not be reached", retried as temporary."""
    with SmtpSink(login=mailbox, auth_require_tls=True) as refusing:
        account = make_account(company, dovecot, mailbox, refusing.port)
        conversation = thread(account, dovecot, mailbox)
        with django_capture_on_commit_callbacks(execute=True):
            response = reply(api_for(agent_user), conversation)
        message_id = response.json()["id"]
        assert queued_sends == [(message_id, None)]
        with django_capture_on_commit_callbacks(execute=True):
            deliver_message(message_id)
        message = Message.objects.get(pk=message_id)
        assert message.status == "failed"
        assert message.error.startswith("SMTP login failed: the server does not accept a login")
        assert "could not be reached" not in message.error and "Retrying" not in message.error
        assert message.send_attempts == 1 and queued_sends == [(message_id, None)]  # no retry
        assert refusing.messages == []

        check = admin_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/").json()
        assert not check["smtp"]["ok"] and check["smtp"]["detail"] == message.error


def test_a_wrong_password_is_permanent_with_the_servers_words(
    account, dovecot, mailbox, smtp, api_for, agent_user, admin_api, queued_sends
):
    conversation = thread(account, dovecot, mailbox)
    smtp.login = ("someone", "else")
    message_id = reply(api_for(agent_user), conversation).json()["id"]
    deliver_message(message_id)
    message = Message.objects.get(pk=message_id)
    assert message.status == "failed" and message.send_attempts == 1
    assert message.error.startswith(
        "SMTP login failed: the server refused the username or password"
    )
    assert "535" in message.error
    check = admin_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/").json()
    assert check["smtp"]["detail"] == message.error


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_server_requiring_a_login_the_mailbox_lacks_is_permanent(
    company, dovecot, mailbox, api_for, agent_user, admin_api, queued_sends
):
    with SmtpSink(login=mailbox, auth_required=True) as strict:  # MAIL before AUTH: 530
        account = make_account(company, dovecot, mailbox, strict.port)
        conversation = thread(account, dovecot, mailbox)
        EmailAccount.objects.filter(pk=account.pk).update(username="")
        message_id = reply(api_for(agent_user), conversation).json()["id"]
        deliver_message(message_id)
        message = Message.objects.get(pk=message_id)
        assert message.status == "failed" and message.send_attempts == 1
        assert message.error.startswith("SMTP login failed: the server requires a login")
        assert strict.messages == []
        check = admin_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/").json()
        assert check["smtp"] == {"ok": True, "detail": "Connected (no login configured)."}


def test_an_unreachable_server_stays_temporary(
    company,
    dovecot,
    mailbox,
    api_for,
    agent_user,
    admin_api,
    queued_sends,
    django_capture_on_commit_callbacks,
):
    account = make_account(company, dovecot, mailbox, free_port())
    dovecot.deliver(*mailbox, FIRST)
    imap.poll_account(account.pk)
    conversation = Conversation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        message_id = reply(api_for(agent_user), conversation).json()["id"]
        deliver_message(message_id)
    message = Message.objects.get(pk=message_id)
    assert message.status == "queued" and message.send_claimed_at is None
    assert message.error.startswith("Retrying: Could not connect to the SMTP server at 127.0.0.1:")
    assert len(queued_sends) == 2 and queued_sends[1][0] == message_id  # the retry
    check = admin_api.post(f"/api/v1/email/accounts/{account.pk}/test-connection/").json()
    assert check["smtp"]["detail"].startswith("Could not connect to the SMTP server")


# ---------------------------------------------------------------- the signature setting


def test_the_signature_is_set_in_the_api_and_on_the_settings_page(
    company, admin_user, admin_api, client
):
    account = EmailAccountFactory(company=company)
    url = f"/api/v1/email/accounts/{account.pk}/"
    response = admin_api.patch(url, {"signature": "Alice\nAcme Logistics"}, format="json")
    assert response.status_code == 200 and response.json()["signature"] == "Alice\nAcme Logistics"
    response = admin_api.patch(url, {"signature": "x" * 2001}, format="json")
    assert response.status_code == 400 and "signature" in response.json()

    client.force_login(admin_user)
    page = client.get(reverse("email_edit", args=[account.pk]))
    assert b'name="signature"' in page.content and b"Alice\nAcme Logistics" in page.content
    form = {
        name: getattr(account, name)
        for name in ("address", "imap_host", "imap_port", "smtp_host", "smtp_port", "username")
    }
    form.update(
        smtp_security="ssl",
        poll_interval_seconds=60,
        first_sync_days=30,
        is_active="on",
        signature="Alice — support",
    )
    response = client.post(reverse("email_edit", args=[account.pk]), form)
    assert response.status_code == 302, response.content
    account.refresh_from_db()
    assert account.signature == "Alice — support"


# ---------------------------------------------------------------- quoted history


def test_quoted_history_is_split_from_what_is_new():
    text = (
        "Any news?\n\nOn Mon, 23 Nov 2026 at 09:30, Acme <help@acme.test> wrote:\n"
        "> We are checking.\n> Regards"
    )
    assert [(s.kind, s.text) for s in split_quoted(text)] == [
        ("text", "Any news?"),
        ("quote", "On Mon, 23 Nov 2026 at 09:30, Acme <help@acme.test> wrote:\n"
                  "> We are checking.\n> Regards"),
    ]  # fmt: skip
    inline = "> Is it paid?\n> And shipped?\nYes, both.\n> Tracking?\nTomorrow."
    assert [s.kind for s in split_quoted(inline)] == ["quote", "text", "quote", "text"]
    wrapped = (
        "Thanks!\nOn Tue, Jun 3, 2025 at 10:02 AM Maria Lopez <\nmaria@example.org> wrote:\n> hi"
    )
    assert [s.kind for s in split_quoted(wrapped)] == ["text", "quote"]
    outlook = "Fine.\n\n-----Original Message-----\nFrom: Tom\nSent: today\n\nold text"
    assert [s.kind for s in split_quoted(outlook)] == ["text", "quote"]
    assert [s.kind for s in split_quoted("Just text\n> one quoted line")] == ["text", "quote"]
    assert [s.kind for s in split_quoted("No quote at all")] == ["text"]


# ---------------------------------------------------------------- the conversation page


def test_the_conversation_page_shows_the_mail_headers_and_folds_the_quote(
    account, dovecot, mailbox, agent_user, client
):
    conversation = thread(account, dovecot, mailbox)
    second = Message.objects.get(external_id="order1042.2@example.org")
    client.force_login(agent_user)
    page = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
    assert "Order 1042 has not arrived" in page
    assert "Maria Lopez &lt;maria@example.org&gt;" in page  # From
    assert "Acme Support &lt;help@acme.test&gt;" in page  # To
    assert "Tom Lee &lt;tom@example.org&gt;, finance@example.org" in page  # Cc
    assert '<details class="mail-quote"' in page  # quoted history folded
    frame = reverse("conversation_message_html", args=[conversation.pk, second.pk])
    assert f'src="{frame}"' in page
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    assert "allow-scripts" not in page and "allow-same-origin" not in page
    assert 'data-role="remote-images"' in page  # her mail has a remote image
    # The reply box: subject prefilled, Cc/Bcc, Enter is a new line.
    assert 'name="subject"' in page and 'value="Re: Order 1042 has not arrived"' in page
    assert 'name="cc"' in page and 'name="bcc"' in page and 'data-compose="mail"' in page


def test_the_reply_form_stores_copies_or_names_the_bad_field(
    account, dovecot, mailbox, agent_user, client, queued_sends
):
    conversation = thread(account, dovecot, mailbox)
    client.force_login(agent_user)
    url = reverse("conversation_reply", args=[conversation.pk])
    bad = {"body": "Hello", "subject": "Re: x", "cc": "tom@example.org, nope", "bcc": ""}
    response = client.post(url, bad, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "“nope” is not a valid email address." in response.content.decode()
    assert 'value="tom@example.org, nope"' in response.content.decode()  # kept for fixing
    assert not Message.objects.filter(direction="out").exists()
    good = {**bad, "cc": "tom@example.org; Finance <finance@example.org>", "bcc": "a@acme.test"}
    response = client.post(url, good, headers={"HX-Request": "true"})
    assert response.status_code == 200
    message = Message.objects.get(direction="out")
    assert message.metadata["cc"] == ["tom@example.org", "finance@example.org"]
    assert message.metadata["bcc"] == ["a@acme.test"] and message.metadata["subject"] == "Re: x"
    item = client.get(
        reverse("conversation_messages", args=[conversation.pk]), {"id": message.pk}
    ).content.decode()
    assert "tom@example.org, finance@example.org" in item and "a@acme.test" in item  # Cc, Bcc


def test_the_html_frame_is_sandboxed_by_its_own_csp_and_remote_images_wait(
    account, dovecot, mailbox, agent_user, client
):
    conversation = thread(account, dovecot, mailbox)
    second = Message.objects.get(external_id="order1042.2@example.org")
    client.force_login(agent_user)
    url = reverse("conversation_message_html", args=[conversation.pk, second.pk])
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<b>Tom</b>" in body and "<script" not in body  # sanitised when imported
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp
    assert "img-src data: cid:;" in csp and "https:" not in csp  # remote images blocked
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["Referrer-Policy"] == "no-referrer"
    allowed = client.get(url, {"remote": "1"})
    assert "img-src https: data: cid:;" in allowed["Content-Security-Policy"]
    # A mail without HTML has no frame.
    first = Message.objects.get(external_id="order1042.1@example.org")
    assert (
        client.get(
            reverse("conversation_message_html", args=[conversation.pk, first.pk])
        ).status_code
        == 404
    )


def test_another_companys_user_gets_404_for_the_html_frame(
    account, dovecot, mailbox, other_company, client
):
    conversation = thread(account, dovecot, mailbox)
    second = Message.objects.get(external_id="order1042.2@example.org")
    stranger = UserFactory(company=other_company)
    client.force_login(stranger)
    url = reverse("conversation_message_html", args=[conversation.pk, second.pk])
    assert client.get(url).status_code == 404
    assert client.get(url, {"remote": "1"}).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302  # to the login page
