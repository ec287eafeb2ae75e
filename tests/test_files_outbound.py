"""Agents send files (issue 16): the reply API's multipart operation, the channel's limits
checked before anything is stored, the message and its files stored `queued` together, and the
send through each channel at its far end: the Graph API's media upload (tests.far_end), the
QR session's adapter seam (tests.whatsapp_fakes), Telethon's seam (tests.telegram_fakes) and a
real SMTP server (MIME attachments). Quotes (replies to a message) at each seam too."""

import dataclasses
import hashlib
import io
import os

import pytest
from django.core.files.storage import default_storage

from channels_integrations.telegram.channel import CHANNEL as TELEGRAM
from messaging.models import Attachment, Message
from messaging.tasks import deliver_message

from . import telegram_fakes as tg
from .factories import ConversationFactory, MessageFactory, WhatsAppNumberFactory
from .test_telegram import account, connected, fake_telegram, listeners  # noqa: F401
from .test_whatsapp_sessions import Status, _start, fast_sessions, runners  # noqa: F401
from .whatsapp_fakes import FakeWebAdapter

pytestmark = pytest.mark.django_db(transaction=True)

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(40_000)
PDF = b"%PDF-1.4\n" + os.urandom(120_000)


def upload(name: str, content: bytes, content_type: str):
    handle = io.BytesIO(content)
    handle.name = name
    return (name, handle, content_type)


def _files_url(conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages/files/"


def _post(api, conversation, files, **fields):
    data = {**fields, "files": [_file(*item) for item in files]}
    return api.post(_files_url(conversation), data, format="multipart")


def _file(name, content, content_type):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture
def cloud_conversation(company):
    return ConversationFactory(company=company, client__phone="+4915133333333")


def test_files_go_to_the_graph_media_endpoint_then_out_as_media_messages(
    api_for, agent_user, cloud_conversation, far_end, eager_celery
):
    quoted = MessageFactory(conversation=cloud_conversation, external_id="wamid.inbound.7")
    response = _post(
        api_for(agent_user),
        cloud_conversation,
        [("lid.png", PNG, "image/png"), ("invoice.pdf", PDF, "application/pdf")],
        body="Here it is",
        reply_to=quoted.pk,
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [a["filename"] for a in body["attachments"]] == ["lid.png", "invoice.pdf"]
    assert [a["kind"] for a in body["attachments"]] == ["image", "document"]
    assert body["quoted_message_id"] == quoted.pk
    message = Message.objects.get(pk=body["id"])
    assert message.status == "sent"

    uploads = far_end.uploads
    assert [(u.filename, u.content_type, u.size, u.sha256) for u in uploads] == [
        ("lid.png", "image/png", len(PNG), sha(PNG)),
        ("invoice.pdf", "application/pdf", len(PDF), sha(PDF)),
    ]
    assert uploads[0].fields == {"messaging_product": "whatsapp", "type": "image/png"}
    assert [(s.kind, s.media_id, s.body, s.filename, s.quoted) for s in far_end.sent] == [
        ("image", uploads[0].media_id, "Here it is", "", "wamid.inbound.7"),
        ("document", uploads[1].media_id, "", "invoice.pdf", ""),
    ]
    assert message.external_id == far_end.sent[0].wamid  # the first file's message


def test_a_part_that_went_out_is_not_sent_again_when_the_next_one_is_retried(
    api_for,
    agent_user,
    cloud_conversation,
    far_end,
    queued_sends,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(
            api_for(agent_user),
            cloud_conversation,
            [("a.png", PNG, "image/png"), ("b.pdf", PDF, "application/pdf")],
        )
    message_id = response.json()["id"]
    # The first file goes out; the second's upload meets a 503 (a transient failure).
    far_end.script = []
    original = far_end.receive_media
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 2:
            args[3].read(args[4])
            return 503, "Service Unavailable"
        return original(*args)

    far_end.receive_media = flaky
    try:
        with django_capture_on_commit_callbacks(execute=True):
            deliver_message.run(message_id)
        message = Message.objects.get(pk=message_id)
        assert message.status == "queued" and "failed (503)" in message.error
        Message.objects.filter(pk=message_id).update(next_attempt_at=None)
        deliver_message.run(message_id)
    finally:
        far_end.receive_media = original
    message.refresh_from_db()
    assert message.status == "sent"
    assert [s.kind for s in far_end.sent] == ["image", "document"]  # the image once
    assert len(far_end.uploads) == 2


@pytest.mark.parametrize(
    ("name", "content_type", "size", "words"),
    [
        ("huge.jpg", "image/jpeg", 6 * 1024 * 1024, ["huge.jpg", "5 MB"]),
        ("anim.gif", "image/gif", 1000, ["anim.gif", "image/gif"]),
        ("empty.pdf", "application/pdf", 0, ["empty.pdf", "empty"]),
    ],
)
def test_a_file_over_the_limit_or_of_a_wrong_type_is_a_400_naming_it_and_nothing_is_stored(
    api_for, agent_user, cloud_conversation, far_end, name, content_type, size, words
):
    before = set(_stored_files())
    response = _post(
        api_for(agent_user), cloud_conversation, [(name, b"x" * size, content_type)], body="Hi"
    )
    assert response.status_code == 400
    errors = response.json()["files"]
    assert all(any(word in error for error in errors) for word in words), errors
    assert not Message.objects.exists() and not Attachment.objects.exists()
    assert set(_stored_files()) == before
    assert far_end.uploads == [] and far_end.sent == []


def _stored_files():
    root = default_storage.location
    for folder, _dirs, names in os.walk(root):
        for name in names:
            yield os.path.join(folder, name)


def test_a_channel_without_files_and_a_missing_files_field_are_400s(
    api_for, agent_user, company, monkeypatch
):
    api = api_for(agent_user)
    conversation = ConversationFactory(company=company, source=account_factory(company))
    monkeypatch.setattr(
        TELEGRAM, "capabilities", dataclasses.replace(TELEGRAM.capabilities, attachments=False)
    )
    response = _post(api, conversation, [("a.pdf", PDF, "application/pdf")])
    assert response.status_code == 400 and "cannot send files" in response.json()["files"][0]
    response = api.post(_files_url(conversation), {"body": "x"}, format="multipart")
    assert response.status_code == 400 and "files" in response.json()
    # The JSON operation stays JSON only.
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"body": "x"}, format="multipart"
    )
    assert response.status_code == 415
    assert not Message.objects.exists()


def account_factory(company):
    from .factories import TelegramAccountFactory

    return TelegramAccountFactory(company=company)


def test_another_companys_conversation_and_attachment_are_404(
    api_for, agent_user, other_company, client
):
    theirs = ConversationFactory(company=other_company)
    response = _post(api_for(agent_user), theirs, [("a.pdf", PDF, "application/pdf")])
    assert response.status_code == 404
    attachment = Attachment.objects.create(
        message=MessageFactory(conversation=theirs),
        conversation=theirs,
        filename="secret.pdf",
    )
    client.force_login(agent_user)
    assert client.get(f"/attachments/{attachment.pk}/").status_code == 404


def test_quote_and_files_through_a_qr_linked_session(
    runners,  # noqa: F811
    company,
    admin_api,
    api_for,
    agent_user,
    eager_celery,
    settings,  # noqa: F811
):
    settings.WHATSAPP_SEND_RATE_PER_MINUTE = 1000
    number = WhatsAppNumberFactory(company=company, provider="web")
    _start(admin_api, number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    conversation = ConversationFactory(
        company=company, source=number, client__phone="+4915112345678"
    )
    quoted = MessageFactory(conversation=conversation, external_id="3EB0QUOTED")
    api = api_for(agent_user)
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"body": "Yes", "reply_to": quoted.pk},
        format="json",
    )
    assert response.status_code == 201, response.content
    response = _post(
        api,
        conversation,
        [("note.ogg", b"OggS" + os.urandom(5000), "audio/ogg"), ("lid.png", PNG, "image/png")],
        body="Listen",
        reply_to=quoted.pk,
    )
    assert response.status_code == 201, response.content
    assert Message.objects.get(pk=response.json()["id"]).status == "sent"
    detail = adapter.sent_detail
    assert detail[0] == {"to": "+4915112345678", "body": "Yes", "quoted": "3EB0QUOTED"}
    # A voice note takes no caption: the text goes first, quoting; then each file.
    assert detail[1] == {"to": "+4915112345678", "body": "Listen", "quoted": "3EB0QUOTED"}
    assert (detail[2]["kind"], detail[2]["quoted"], detail[2]["size"]) == ("audio", "", 5004)
    assert (detail[3]["kind"], detail[3]["filename"], detail[3]["sha256"]) == (
        "image", "lid.png", sha(PNG),
    )  # fmt: skip


def test_quote_and_files_through_telegram(
    listeners,  # noqa: F811
    account,  # noqa: F811
    api_for,
    agent_user,
    eager_celery,  # noqa: F811
):
    client = connected(listeners, account)
    client.deliver("NewMessage", tg.new_message(61, "Photo please?"))
    quoted = Message.objects.get(external_id="61")
    conversation = quoted.conversation
    api = api_for(agent_user)
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"body": "Sure", "reply_to": quoted.pk},
        format="json",
    )
    assert response.status_code == 201, response.content
    response = _post(
        api,
        conversation,
        [("lid.png", PNG, "image/png"), ("spec.pdf", PDF, "application/pdf")],
        body="Here",
        reply_to=quoted.pk,
    )
    assert response.status_code == 201, response.content
    assert Message.objects.get(pk=response.json()["id"]).status == "sent"
    detail = client.sent_detail
    assert detail[0] == {"peer": 424242, "body": "Sure", "reply_to": 61}
    assert (detail[1]["body"], detail[1]["reply_to"], detail[1]["sha256"]) == (
        "Here", 61, sha(PNG),
    )  # fmt: skip
    assert (detail[2]["filename"], detail[2]["force_document"], detail[2]["reply_to"]) == (
        "spec.pdf", True, None,
    )  # fmt: skip


def test_email_replies_carry_files_as_mime_attachments(
    api_for, agent_user, company, smtp_server, eager_celery
):
    from .factories import EmailAccountFactory

    mailbox = EmailAccountFactory(
        company=company,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_security="none",
        username="smtp-user",
        password="smtp-pass",
    )
    conversation = ConversationFactory(
        company=company, source=mailbox, client__email="maria@example.org", subject="Order"
    )
    response = _post(
        api_for(agent_user),
        conversation,
        [("invoice.pdf", PDF, "application/pdf"), ("notes.csv", b"a,b\n1,2\n", "text/csv")],
        body="Attached.",
    )
    assert response.status_code == 201, response.content
    assert Message.objects.get(pk=response.json()["id"]).status == "sent"
    mail = smtp_server.messages[-1]
    parts = {part.get_filename(): part for part in mail.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_payload(decode=True) == PDF
    assert parts["notes.csv"].get_content_type() == "text/csv"


def test_reply_to_must_be_a_message_of_the_conversation_of_a_channel_that_quotes(
    api_for, agent_user, cloud_conversation, company
):
    api = api_for(agent_user)
    elsewhere = MessageFactory(conversation=ConversationFactory(company=company))
    url = f"/api/v1/conversations/{cloud_conversation.pk}/messages/"
    response = api.post(url, {"body": "x", "reply_to": elsewhere.pk}, format="json")
    assert response.status_code == 400 and "reply_to" in response.json()
    assert not Message.objects.filter(direction="out").exists()


def test_files_are_stored_streamed_not_read_whole(
    api_for, agent_user, cloud_conversation, queued_sends, settings
):
    """A big upload is spooled to a temporary file by Django, and stored from it chunk by
    chunk: the stored file is byte for byte the upload."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    content = b"%PDF" + os.urandom(3 * 1024 * 1024)
    response = _post(
        api_for(agent_user), cloud_conversation, [("big.pdf", content, "application/pdf")]
    )
    assert response.status_code == 201
    attachment = Attachment.objects.get()
    with attachment.file.open("rb") as handle:
        assert sha(handle.read()) == sha(content)
    assert attachment.size == len(content) and attachment.download_state == "ready"
