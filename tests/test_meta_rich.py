"""Rich messages on the Meta channels, end to end with the Graph fake at the wire: inbound
attachments downloaded from Meta's CDN in the background (and a dead URL said in words),
the client named from their public profile, agents' files (Messenger uploads them with the
message; Instagram refuses in words before anything is queued) and agents' reactions
(Messenger any emoji, Instagram the heart)."""

import hashlib
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from messaging.models import Attachment, Message

from .factories import InstagramAccountFactory, MessengerPageFactory
from .test_meta_channels import SECRET, _inbound, _write_in, sample, signed_post

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 price list " + bytes(range(256)) * 200


@pytest.fixture
def page(company):
    return MessengerPageFactory(company=company, page_id="1000001", app_secret=SECRET)


@pytest.fixture
def instagram(company):
    return InstagramAccountFactory(
        company=company, page_id="1000002", ig_user_id="17841400000001", app_secret=SECRET
    )


@pytest.fixture
def graph_page(far_end, page):
    far_end.meta_pages[page.page_access_token] = (page.page_id, "Acme Shop")
    far_end.meta_app_secrets[page.page_access_token] = SECRET
    return far_end


@pytest.fixture
def graph_instagram(far_end, instagram):
    far_end.meta_pages[instagram.page_access_token] = (instagram.page_id, "Acme Shop")
    far_end.meta_app_secrets[instagram.page_access_token] = SECRET
    return far_end


def _with_cdn_urls(payload: dict, fake, names: list[str]) -> dict:
    attachments = payload["entry"][0]["messaging"][0]["message"]["attachments"]
    for attachment, name in zip(attachments, names, strict=False):
        attachment["payload"]["url"] = fake.cdn_url(name)
    return payload


def test_inbound_attachments_are_downloaded_from_metas_cdn(
    client, page, graph_page, eager_celery, django_capture_on_commit_callbacks
):
    graph_page.meta_cdn["photo_1.jpg"] = b"\xff\xd8\xff jpeg bytes"
    graph_page.meta_cdn["invoice.pdf"] = PDF
    payload = sample("messenger_attachments.json", page)
    attachments = payload["entry"][0]["messaging"][0]["message"]["attachments"]
    payload["entry"][0]["messaging"][0]["message"]["attachments"] = [
        attachments[0],
        attachments[3],
    ]
    _with_cdn_urls(payload, graph_page, ["photo_1.jpg", "invoice.pdf"])
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(client, page, payload).status_code == 200
    [message] = _inbound(page)
    image, document = message.attachments.order_by("id")
    assert (image.download_state, document.download_state) == ("ready", "ready")
    assert image.file.read() == b"\xff\xd8\xff jpeg bytes"
    assert hashlib.sha256(document.file.read()).digest() == hashlib.sha256(PDF).digest()
    assert document.size == len(PDF)
    assert sorted(graph_page.downloads) == ["invoice.pdf", "photo_1.jpg"]


def test_an_expired_cdn_url_fails_in_words_and_can_be_retried(
    client, page, graph_page, admin_api, eager_celery, django_capture_on_commit_callbacks
):
    payload = sample("messenger_attachments.json", page)
    message_part = payload["entry"][0]["messaging"][0]["message"]
    message_part["attachments"] = message_part["attachments"][:1]
    _with_cdn_urls(payload, graph_page, ["gone.jpg"])
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(client, page, payload)
    attachment = Attachment.objects.get()
    assert attachment.download_state == "failed"
    assert "no longer serves this file" in attachment.download_error
    assert "send it again" in attachment.download_error

    graph_page.meta_cdn["gone.jpg"] = b"now here"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(f"/api/v1/attachments/{attachment.pk}/retry-download/")
    assert response.status_code in (200, 202), response.content
    attachment.refresh_from_db()
    assert attachment.download_state == "ready" and attachment.file.read() == b"now here"


def test_a_new_thread_is_named_from_the_writers_profile(
    client,
    page,
    instagram,
    graph_page,
    graph_instagram,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    graph_page.meta_profiles["PSID_1"] = {"first_name": "Olena", "last_name": "Kovalenko"}
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(client, page, sample("messenger_text.json", page))
    conversation = _inbound(page).get().conversation
    assert conversation.client.name == "Olena Kovalenko"
    assert conversation.client.company_id == page.company_id

    [instagram_text] = [sample("instagram_text.json", instagram)]
    sender = instagram_text["entry"][0]["messaging"][0]["sender"]["id"]
    graph_instagram.meta_profiles[sender] = {"name": "", "username": "olena.k"}
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(client, instagram, instagram_text)
    assert _inbound(instagram).get().conversation.client.name == "@olena.k"


def test_an_unknown_profile_leaves_the_thread_as_it_was(
    client, page, graph_page, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, page, sample("messenger_text.json", page))
    assert response.status_code == 200
    conversation = _inbound(page).get().conversation
    assert conversation.client is None  # Graph refused the look-up: nothing invented


def _files(api, conversation, files, **fields):
    data = {
        **fields,
        "files": [
            SimpleUploadedFile(name, content, content_type=kind) for name, content, kind in files
        ],
    }
    return api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/files/", data, format="multipart"
    )


def test_messenger_files_are_uploaded_with_their_messages(
    client, page, graph_page, admin_api, eager_celery, django_capture_on_commit_callbacks
):
    conversation = _write_in(client, page, "messenger_text.json", ago=timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True):
        response = _files(
            admin_api,
            conversation,
            [("prices.pdf", PDF, "application/pdf"), ("lid.png", b"\x89PNG fake", "image/png")],
            body="Here are our prices",
        )
    assert response.status_code == 201, response.content
    text, document, image = graph_page.meta_sent
    assert (text.kind, text.body, text.messaging_type) == (
        "text",
        "Here are our prices",
        "RESPONSE",
    )
    assert (document.kind, document.filename, document.size) == ("file", "prices.pdf", len(PDF))
    assert document.sha256 == hashlib.sha256(PDF).hexdigest()
    assert (image.kind, image.filename) == ("image", "lid.png")
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "sent"


def test_instagram_refuses_files_before_anything_is_queued(client, instagram, admin_api):
    conversation = _write_in(client, instagram, "instagram_text.json")
    response = _files(admin_api, conversation, [("prices.pdf", PDF, "application/pdf")])
    assert response.status_code == 400
    assert "Instagram cannot send files" in str(response.json())
    assert not Message.objects.filter(direction="out").exists()


def _react(api, message, emoji):
    return api.post(
        f"/api/v1/conversations/{message.conversation_id}/messages/{message.pk}/reactions/",
        {"emoji": emoji},
        format="json",
    )


def test_agents_react_on_messenger_with_any_emoji_and_remove_it(
    client, page, graph_page, admin_api, eager_celery, django_capture_on_commit_callbacks
):
    conversation = _write_in(client, page, "messenger_text.json")
    inbound = _inbound(page).get(conversation=conversation)
    with django_capture_on_commit_callbacks(execute=True):
        assert _react(admin_api, inbound, "🎉").status_code == 200
    [sent] = graph_page.meta_sent
    assert (sent.kind, sent.recipient_id, sent.body) == (
        "react",
        "PSID_1",
        f"🎉@{inbound.external_id}",
    )
    with django_capture_on_commit_callbacks(execute=True):
        removed = admin_api.delete(
            f"/api/v1/conversations/{conversation.pk}/messages/{inbound.pk}/reactions/"
        )
    assert removed.status_code == 200 and removed.json()["reactions"] == []
    assert graph_page.meta_sent[-1].kind == "unreact"
    assert Message.objects.filter(conversation=conversation).count() == 1


def test_instagram_reactions_go_out_as_the_heart(
    client,
    instagram,
    graph_instagram,
    admin_api,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    conversation = _write_in(client, instagram, "instagram_text.json")
    inbound = _inbound(instagram).get(conversation=conversation)
    with django_capture_on_commit_callbacks(execute=True):
        assert _react(admin_api, inbound, "👍").status_code == 200
    [sent] = graph_instagram.meta_sent
    assert (sent.kind, sent.body) == ("react", f"love@{inbound.external_id}")
