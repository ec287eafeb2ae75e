"""Inbound files a WhatsApp Cloud webhook announces are downloaded in the background (issue
16): Graph `GET /{media-id}` → a URL, then its bytes with the number's token, from the Graph
API's far end at the wire (tests.far_end). Idempotent (a second run of the task downloads
nothing), within ATTACHMENT_MAX_BYTES, `failed` with words when it cannot, and retried by an
agent (API and page)."""

import hashlib
import os

import pytest

from messaging.models import Attachment, Message
from messaging.services import downloads
from messaging.tasks import download_attachment

from . import telegram_fakes as tg
from .factories import ConversationFactory, MessageFactory
from .far_end import graph_error
from .processes import wait_for
from .test_telegram import account, connected, fake_telegram, listeners  # noqa: F401
from .test_whatsapp_cloud import APP_SECRET, _inbound_payload, _signed_post, number  # noqa: F401
from .test_whatsapp_sessions import Status, _start, fast_sessions, runners  # noqa: F401
from .whatsapp_fakes import FakeWebAdapter

pytestmark = pytest.mark.django_db

PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(200_000)


def _image(media_id="1479537139650973", wamid="wamid.img.1"):
    return {
        "from": "4915112345678",
        "id": wamid,
        "timestamp": "1763900000",
        "type": "image",
        "image": {"caption": "The broken lid", "mime_type": "image/jpeg", "id": media_id},
    }


def _receive(client, number, django_capture_on_commit_callbacks, queued):  # noqa: F811
    with django_capture_on_commit_callbacks(execute=True):
        response = _signed_post(client, number, _inbound_payload(_image()))
    assert response.status_code == 200
    attachment = Attachment.objects.get(message__external_id="wamid.img.1")
    assert attachment.download_state == "pending" and not attachment.stored
    assert queued == [attachment.pk]  # the download task, queued after commit
    return attachment


@pytest.fixture
def queued_downloads(monkeypatch):
    queued = []
    monkeypatch.setattr(download_attachment, "delay", lambda pk: queued.append(pk))
    return queued


def test_an_announced_file_is_downloaded_once_and_shown_when_ready(
    client,
    number,  # noqa: F811
    far_end,
    queued_downloads,
    django_capture_on_commit_callbacks,
    agent_user,
    api_for,
):
    far_end.hosted["1479537139650973"] = PHOTO
    attachment = _receive(client, number, django_capture_on_commit_callbacks, queued_downloads)
    with django_capture_on_commit_callbacks(execute=True) as published:
        download_attachment.run(attachment.pk)
    assert published  # the message.updated event goes out after commit
    download_attachment.run(attachment.pk)  # the task again (a redelivery): nothing more
    attachment.refresh_from_db()
    assert attachment.download_state == "ready" and attachment.size == len(PHOTO)
    assert far_end.downloads == ["1479537139650973"]
    with attachment.file.open("rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == hashlib.sha256(PHOTO).hexdigest()
    client.force_login(agent_user)
    response = client.get(f"/attachments/{attachment.pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PHOTO
    data = api_for(agent_user).get(f"/api/v1/attachments/{attachment.pk}/").json()
    assert data["download_state"] == "ready" and data["url"] == f"/attachments/{attachment.pk}/"


def test_a_failed_download_says_why_and_an_agent_retries_it(
    client,
    number,  # noqa: F811
    far_end,
    queued_downloads,
    django_capture_on_commit_callbacks,
    agent_user,
    api_for,
):
    attachment = _receive(client, number, django_capture_on_commit_callbacks, queued_downloads)
    far_end.hosted["1479537139650973"] = graph_error(190, status=401)
    assert downloads.download_attachment(attachment.pk) == "failed"
    attachment.refresh_from_db()
    assert attachment.download_state == "failed"
    assert "access token" in attachment.download_error

    # The thread shows why, with a button to try again.
    client.force_login(agent_user)
    page = client.get(f"/inbox/{attachment.conversation_id}/").content.decode()
    assert "access token" in page and f"/attachments/{attachment.pk}/retry-download/" in page

    far_end.hosted["1479537139650973"] = PHOTO
    api = api_for(agent_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/attachments/{attachment.pk}/retry-download/")
    assert response.status_code == 200 and response.json()["download_state"] == "pending"
    assert queued_downloads[-1] == attachment.pk
    download_attachment.run(attachment.pk)
    attachment.refresh_from_db()
    assert attachment.download_state == "ready" and attachment.stored
    # Only a failed download is retried.
    response = api.post(f"/api/v1/attachments/{attachment.pk}/retry-download/")
    assert response.status_code == 400 and "attachment" in response.json()


def test_a_file_over_the_limit_fails_in_words_and_stores_nothing(
    client,
    number,  # noqa: F811
    far_end,
    queued_downloads,
    django_capture_on_commit_callbacks,
    settings,
):
    settings.ATTACHMENT_MAX_BYTES = 100_000
    far_end.hosted["1479537139650973"] = PHOTO
    attachment = _receive(client, number, django_capture_on_commit_callbacks, queued_downloads)
    assert downloads.download_attachment(attachment.pk) == "failed"
    attachment.refresh_from_db()
    assert "ATTACHMENT_MAX_BYTES" in attachment.download_error and not attachment.stored


def test_another_companys_attachment_is_404_for_retry_and_detail(
    api_for, agent_user, other_company, client
):
    theirs = ConversationFactory(company=other_company)
    attachment = Attachment.objects.create(
        message=MessageFactory(conversation=theirs),
        conversation=theirs,
        download_state="failed",
        download_error="x",
    )
    api = api_for(agent_user)
    assert api.get(f"/api/v1/attachments/{attachment.pk}/").status_code == 404
    assert api.post(f"/api/v1/attachments/{attachment.pk}/retry-download/").status_code == 404
    client.force_login(agent_user)
    assert client.post(f"/attachments/{attachment.pk}/retry-download/").status_code == 404
    attachment.refresh_from_db()
    assert attachment.download_state == "failed"
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_telegram_file_is_downloaded_through_the_listener_and_a_failure_retried(
    listeners,  # noqa: F811
    account,  # noqa: F811
    queued_downloads,
    api_for,
    agent_user,
):
    client = connected(listeners, account)
    client.deliver("NewMessage", tg.new_message(71, "The lid", media=tg.photo(size=len(PHOTO))))
    attachment = Attachment.objects.get(message__external_id="71")
    assert attachment.download_state == "pending"
    wait_for(lambda: queued_downloads == [attachment.pk])

    # The same message again (a catch-up replay), then another: the replay records no second
    # file and queues no second download.
    client.deliver("NewMessage", tg.new_message(71, "The lid", media=tg.photo(size=len(PHOTO))))
    client.deliver("NewMessage", tg.new_message(72, "Thanks"))
    wait_for(lambda: Message.objects.filter(external_id="72").exists())
    assert Attachment.objects.filter(message__external_id="71").count() == 1
    assert queued_downloads == [attachment.pk]

    # Telegram has nothing for it (yet): failed, in words.
    assert downloads.download_attachment(attachment.pk) == "failed"
    attachment.refresh_from_db()
    assert "no longer has this message" in attachment.download_error

    tg.FakeTelegramClient.media[71] = PHOTO
    response = api_for(agent_user).post(f"/api/v1/attachments/{attachment.pk}/retry-download/")
    assert response.status_code == 200
    assert downloads.download_attachment(attachment.pk) == "ready"
    assert downloads.download_attachment(attachment.pk) is None  # a second run: nothing
    attachment.refresh_from_db()
    with attachment.file.open("rb") as handle:
        assert handle.read() == PHOTO
    assert [call for call in client.calls if call[0] == "download_media"] == [
        ("download_media", 71)
    ]


@pytest.mark.django_db(transaction=True)
def test_a_qr_linked_file_is_downloaded_through_the_session_and_a_failure_retried(
    runners,  # noqa: F811
    company,
    admin_api,
    queued_downloads,
    api_for,
    agent_user,
):
    from django.utils import timezone

    from channels_integrations.whatsapp.types import AnnouncedMedia
    from channels_integrations.whatsapp.web import WebInboundMessage

    from .factories import WhatsAppNumberFactory

    web_number = WhatsAppNumberFactory(company=company, provider="web")
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    FakeWebAdapter.media = {}
    adapter.callbacks.on_message(
        WebInboundMessage(
            wamid="3EB0PHOTO",
            phone="4915112345678",
            name="Kerry",
            body="The lid",
            timestamp=timezone.now(),
            media=[
                AnnouncedMedia(
                    kind="image",
                    content_type="image/jpeg",
                    size=len(PHOTO),
                    ref={"media_id": "m-1"},
                )
            ],
        )
    )
    attachment = Attachment.objects.get(message__external_id="3EB0PHOTO")
    assert attachment.download_state == "pending"
    wait_for(lambda: queued_downloads == [attachment.pk])
    assert downloads.download_attachment(attachment.pk) == "failed"
    attachment.refresh_from_db()
    assert "media not found" in attachment.download_error

    FakeWebAdapter.media = {"m-1": PHOTO}
    response = api_for(agent_user).post(f"/api/v1/attachments/{attachment.pk}/retry-download/")
    assert response.status_code == 200
    assert downloads.download_attachment(attachment.pk) == "ready"
    attachment.refresh_from_db()
    with attachment.file.open("rb") as handle:
        assert handle.read() == PHOTO


def test_a_download_whose_task_vanished_is_picked_up_by_the_sweeper(
    client,
    number,  # noqa: F811
    far_end,
    queued_downloads,
    django_capture_on_commit_callbacks,
):
    """The broker was down when the file was announced (or the queue was purged): nothing
    claims it, so beat's sweeper queues it again; a fresh one is left to its own task."""
    far_end.hosted["1479537139650973"] = PHOTO
    attachment = _receive(client, number, django_capture_on_commit_callbacks, queued_downloads)
    queued_downloads.clear()
    assert downloads.sweep_pending_downloads() == {"requeued": 0, "failed": 0}  # fresh
    Attachment.objects.filter(pk=attachment.pk).update(
        created_at=attachment.created_at - downloads.UNCLAIMED_STALE * 2
    )
    assert downloads.sweep_pending_downloads() == {"requeued": 1, "failed": 0}
    assert queued_downloads == [attachment.pk]
    download_attachment.run(attachment.pk)
    attachment.refresh_from_db()
    assert attachment.download_state == "ready" and attachment.size == len(PHOTO)
    assert downloads.sweep_pending_downloads() == {"requeued": 0, "failed": 0}


def test_a_download_that_keeps_dying_is_failed_in_words_not_tried_forever(
    client,
    number,  # noqa: F811
    far_end,
    queued_downloads,
    django_capture_on_commit_callbacks,
):
    attachment = _receive(client, number, django_capture_on_commit_callbacks, queued_downloads)
    queued_downloads.clear()
    # A worker died holding the claim, over and over (its claims went stale).
    Attachment.objects.filter(pk=attachment.pk).update(
        download_started_at=attachment.created_at - downloads.CLAIM_STALE * 2,
        download_attempts=downloads.MAX_ATTEMPTS,
    )
    assert downloads.sweep_pending_downloads() == {"requeued": 0, "failed": 1}
    attachment.refresh_from_db()
    assert attachment.download_state == "failed" and queued_downloads == []
    assert "stopped 5 times" in attachment.download_error
