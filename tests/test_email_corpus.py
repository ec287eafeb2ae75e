"""Real-world mails through a real Dovecot and our poll: the public test mails of mail
libraries (tests/mail_corpus/public, sources and licences in tests/mail_corpus/README.md),
the project's own (tests/mail_corpus/*.eml) and mails written for each defect class of issue
#15 (tests/mail_corpus/crafted). Zero crashes and zero quarantined; per mail, the stored body,
attachments (name and size), sender and conversation are those in expected.json (regenerate
it with UPDATE_MAIL_CORPUS=1 after a deliberate change, and read the diff), and the defect
classes are asserted one by one below."""

import json
import os
from pathlib import Path

import pytest
from django.db.models import Count

from channels_integrations.email import imap
from channels_integrations.email.parsing import parse_mail
from channels_integrations.models import EmailMessageRecord, EmailQuarantine
from messaging.models import Attachment, Conversation, Message

from .factories import EmailAccountFactory
from .mailserver import CORPUS, corpus_raw, with_message_id

pytestmark = pytest.mark.django_db
EXPECTED = CORPUS / "expected.json"


def corpus_files() -> list[Path]:
    return sorted(CORPUS.rglob("*.eml"), key=lambda path: str(path.relative_to(CORPUS)))


@pytest.fixture
def account(company, dovecot):
    user, password = dovecot.add_user()
    fields = dovecot.account_fields(user, password, first_sync_days=36500)
    return EmailAccountFactory(company=company, **fields), (user, password)


def observed(files) -> dict:
    """What is stored of each mail: by its UID (delivery order = file order)."""
    records = {
        r.uid: r
        for r in EmailMessageRecord.objects.filter(direction="in").select_related("conversation")
    }
    first_in_conversation = {}
    out = {}
    for uid, path in enumerate(files, start=1):
        name = str(path.relative_to(CORPUS))
        record = records.get(uid)
        if record is None:
            out[name] = {"stored": False}
            continue
        message = Message.objects.get(
            conversation_id=record.conversation_id, external_id=record.message_id[:255]
        )
        first_in_conversation.setdefault(record.conversation_id, name)
        out[name] = {
            "stored": True,
            "from": message.sender_address,
            "name": message.sender_name,
            "subject": message.metadata.get("subject", ""),
            "to": message.metadata.get("to", []),
            "cc": message.metadata.get("cc", []),
            "body": message.body[:120],
            "body_length": len(message.body),
            "attachments": [
                [a.filename, a.size] for a in Attachment.objects.filter(message=message)
            ],
            "conversation": first_in_conversation[record.conversation_id],
        }
    return out


def test_the_real_world_corpus_goes_through_dovecot_and_the_poll(account, dovecot):
    account, mailbox = account
    files = corpus_files()
    assert len(files) >= 190
    # Library fixtures often reuse a Message-ID (40 files share one with an earlier file):
    # those copies get one of their own, so that every file is stored, not known already.
    seen = set()
    client = dovecot.client(*mailbox)
    try:
        for uid, path in enumerate(files, start=1):
            raw = corpus_raw(path)
            message_id = parse_mail(raw, attachment_limit=0).message_id
            if message_id in seen:
                raw = with_message_id(raw, f"copy-{uid}@corpus.test")
            seen.add(message_id)
            client.append("INBOX", raw)
    finally:
        client.logout()

    result = imap.poll_account(account.pk)
    account.refresh_from_db()
    assert "error" not in result, result
    assert result["quarantined"] == 0 and not EmailQuarantine.objects.exists()
    assert result["found"] == len(files) == result["imported"]
    assert account.status == "ok"
    # A second poll finds nothing and crashes on nothing.
    again = imap.poll_account(account.pk)
    assert again == {"found": 0, "imported": 0, "known": 0, "quarantined": 0}

    stored = observed(files)
    if os.environ.get("UPDATE_MAIL_CORPUS"):
        EXPECTED.write_text(json.dumps(stored, indent=1, ensure_ascii=False, sort_keys=True))
    expected = json.loads(EXPECTED.read_text())
    differences = {
        name: {"expected": expected.get(name), "stored": value}
        for name, value in stored.items()
        if expected.get(name) != value
    }
    assert not differences, json.dumps(differences, indent=1, ensure_ascii=False)[:6000]

    def mail(name):
        return stored[name]

    # Raw 8-bit headers: RFC 6532 UTF-8, and Latin-1 detected; encoded words with a comma.
    assert mail("crafted/c02_rfc6532_utf8_headers.eml")["subject"] == "Заказ №5 не пришёл"
    assert mail("crafted/c02_rfc6532_utf8_headers.eml")["name"] == "Иван Петров"
    assert mail("crafted/c03_raw_latin1_headers.eml")["name"] == "René Dupont"
    assert mail("crafted/c03_raw_latin1_headers.eml")["subject"] == "Problème de livraison"
    assert mail("crafted/c01_encoded_comma.eml")["name"] == "Müller, Hans"
    assert mail("crafted/c01_encoded_comma.eml")["from"] == "hans.mueller@example.de"
    assert mail("public/mail__rfc6532_utf8_headers.eml")["stored"]
    # gb2312 declared, a GBK character sent.
    assert mail("crafted/c04_gb2312_with_gbk_char.eml")["body"] == "测试镕"
    # Apple Mail's text, image, text: both texts in the body, in order; the image kept.
    apple = mail("crafted/c05_apple_text_image_text.eml")
    assert apple["body"].startswith("Here is the photo of the damage:")
    assert apple["body"].endswith("Please replace it.")
    assert apple["attachments"] == [["IMG_0001.png", 69]]
    # An empty text/plain does not hide the HTML's text.
    assert mail("crafted/c06_empty_plain_hides_html.eml")["body"] == "Where is invoice 311?"
    # Attachments under multipart/alternative, and nested two levels down, with real names.
    assert mail("crafted/c07_alternative_with_inline_image.eml")["attachments"] == [
        ["logo.png", 69]
    ]
    assert mail("crafted/c08_nested_attachments.eml")["attachments"] == [
        ["Foto Küche.png", 69],
        ["Vertrag März.pdf", 15],
    ]
    # A mail that is only a forwarded message: summarised in the body, kept as .eml.
    forward = mail("crafted/c09_only_a_forward.eml")
    assert forward["body"].startswith("---------- Forwarded message ----------")
    assert (
        "Thank you for order 5521" in Message.objects.get(external_id="fwdonly.1@example.at").body
    )
    assert forward["attachments"][0][0] == "Your order 5521.eml"
    assert forward["attachments"][0][1] > 200
    # Forwarded messages of the public corpus: never 0-byte files.
    for name, value in stored.items():
        for filename, size in value.get("attachments", []):
            if filename.endswith(".eml"):
                assert size > 0, (name, filename)
    # An attachment-only mail: no body text, the file kept.
    scan = mail("crafted/c10_attachment_only.eml")
    assert scan["body"] == "" and scan["attachments"] == [["scan-0001.pdf", 15]]
    # Delivery reports: recognised, the status part and the original kept.
    bounce = Message.objects.get(external_id="20090708054739.270231E8B13@mail.example.com")
    assert bounce.metadata["report"]["status"] == "5.1.1"
    assert bounce.metadata["report"]["original_message_id"] == "20090708054735.GC7578@example.com"
    assert bounce.metadata["auto_reply"] is True
    read = Message.objects.get(external_id="199509200019.12345@example.com")
    assert read.metadata["report"]["type"] == "disposition-notification"

    # A Date in the year 3609 is not believed; a later reply moves the preview.
    future = Conversation.objects.get(messages__external_id="future.1@example.net")
    assert future.last_message_at.year == 2026
    assert future.last_message_preview == "Fixed my clock now."
    # Outlook: a reply with only Thread-Index / Thread-Topic joins the original.
    assert (
        mail("crafted/c14_outlook_reply_thread_index_only.eml")["conversation"]
        == "crafted/c13_outlook_original.eml"
    )
    # The same normalised subject from the same person joins; from another person it does not.
    assert (
        mail("crafted/c16_subject_thread_reply.eml")["conversation"]
        == "crafted/c15_subject_thread_first.eml"
    )
    assert (
        mail("crafted/c17_subject_other_person.eml")["conversation"]
        == "crafted/c17_subject_other_person.eml"
    )
    # An original that arrives after its reply joins it, and comes first in the history.
    late = mail("crafted/c19_late_original.eml")
    assert late["conversation"] == "crafted/c18_late_reply_first.eml"
    history = list(
        Message.objects.filter(conversation__messages__external_id="late.1@example.de")
        .order_by("created_at", "id")
        .values_list("external_id", flat=True)
    )
    assert history == ["late.1@example.de", "late.2@example.de"]
    # Nothing was stored with surrogates or NULs, and no conversation is empty.
    assert not Conversation.objects.annotate(n=Count("messages")).filter(n=0).exists()
