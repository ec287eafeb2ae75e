"""The outbox and Idempotency-Key, on the real PostgreSQL and Redis, through the real channels;
the only stand-in is the Cloud API's far end at the wire (tests.far_end.GraphFake).

- a send whose task was lost (broker down at commit, a killed worker) is queued again by the
  sweeper and goes out once; a claim that went stale is settled from the record of the send
  (never sent again) or ends failed with a reason that says it may have arrived;
- the broker down at send time: the API still answers 201 (the row is the truth);
- the same Idempotency-Key and body: one send, the first answer again; another body: 422.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.celery import app as celery_app
from crm.models import IdempotencyKey
from messaging import sending, services
from messaging.models import Message
from messaging.services import outbox
from messaging.tasks import sweep_outbox

from .conftest import eager_tasks, set_celery
from .factories import ConversationFactory, UserFactory, WhatsAppNumberFactory
from .processes import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(company):
    return ConversationFactory(company=company, client__phone="+4915133333333")


def _queued(conversation, body, *, due_ago=timedelta(0), **fields):
    return Message.objects.create(
        conversation=conversation,
        direction="out",
        status="queued",
        body=body,
        next_attempt_at=timezone.now() - due_ago,
        **fields,
    )


# ---------------------------------------------------------------- the sweeper


def test_a_send_whose_task_was_lost_is_requeued_by_the_sweeper_and_sent_once(
    conversation, far_end, eager_celery, settings
):
    settings.OUTBOX_REQUEUE_SECONDS = 30
    lost = _queued(conversation, "lost task", due_ago=timedelta(minutes=2))
    fresh = _queued(conversation, "its task is on its way")  # due now: not the sweeper's yet

    result = sweep_outbox()
    assert result["requeued"] == 1
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == "sent" and lost.send_attempts == 1
    assert fresh.status == "queued" and fresh.send_attempts == 0
    assert [m.body for m in far_end.sent] == ["lost task"]
    assert sweep_outbox()["requeued"] == 0  # nothing is sent twice by a second sweep
    assert len(far_end.sent) == 1


def test_a_stale_claim_is_settled_from_its_record_or_failed_as_unknown_never_resent(
    conversation, far_end, eager_celery, settings
):
    settings.SEND_CLAIM_STALE_SECONDS = 60
    long_ago = timezone.now() - timedelta(minutes=5)
    # The worker died after the far end accepted and after it kept the record ...
    recorded = _queued(conversation, "accepted", send_claimed_at=long_ago, send_attempts=1)
    sending.record_sent(outbox.MESSAGES.key(recorded.pk), "wamid.accepted")
    # ... or in the middle of the call: nobody can tell whether it arrived.
    unknown = _queued(conversation, "in flight", send_claimed_at=long_ago, send_attempts=1)
    # A live worker is sending this one right now.
    live = _queued(conversation, "live", send_claimed_at=timezone.now(), send_attempts=1)

    result = sweep_outbox()
    assert (result["settled_sent"], result["settled_unknown"]) == (1, 1)
    for message in (recorded, unknown, live):
        message.refresh_from_db()
    assert recorded.status == "sent" and recorded.external_id == "wamid.accepted"
    assert unknown.status == "failed" and "may or may not have arrived" in unknown.error
    assert live.status == "queued"
    assert far_end.requests == 0  # none of them was sent again


def test_a_message_record_never_answers_for_a_broadcast_recipient(conversation, far_end):
    message = _queued(conversation, "reply")
    sending.record_sent(outbox.MESSAGES.key(message.pk), "wamid.reply")
    assert sending.sent_record(f"broadcast-recipient:{message.pk}") is None
    assert sending.sent_record(f"message:{message.pk}") == "wamid.reply"


def _use_broker(url):
    set_celery(broker_url=url)
    celery_app._pool = None  # the app's pool and producers are made for one URL
    celery_app.amqp._producer_pool = None


def test_the_broker_down_at_send_time_still_answers_201_and_the_sweeper_sends_later(
    conversation, api_for, far_end, settings, django_capture_on_commit_callbacks
):
    agent = UserFactory(company=conversation.company)
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    broker_url = celery_app.conf.broker_url
    _use_broker(f"redis://127.0.0.1:{free_port()}/0")  # a real connection, nothing listens
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = api_for(agent).post(url, {"body": "Still there?"}, format="json")
    finally:
        _use_broker(broker_url)
    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == "queued" and far_end.sent == []

    # The broker is back; beat's sweeper finds the row once it is overdue and queues it.
    Message.objects.filter(pk=message.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=1)
    )
    with eager_tasks():
        sweep_outbox()
    message.refresh_from_db()
    assert message.status == "sent"
    assert [m.body for m in far_end.sent] == ["Still there?"]


def test_a_queued_message_whose_number_was_deactivated_fails_with_the_reason(
    conversation, far_end, eager_celery
):
    message = _queued(conversation, "too late")
    conversation.source.is_active = False
    conversation.source.save()
    outbox.deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == "failed" and "deactivated" in message.error
    assert far_end.requests == 0


# ---------------------------------------------------------------- Idempotency-Key


def _post(api, url, data, key):
    return api.post(url, data, format="json", headers={"Idempotency-Key": key})


def test_a_repeated_message_post_sends_once_and_answers_the_same(
    conversation, api_for, far_end, eager_celery, django_capture_on_commit_callbacks
):
    agent = UserFactory(company=conversation.company)
    api = api_for(agent)
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    key = str(uuid.uuid4())
    with django_capture_on_commit_callbacks(execute=True):
        first = _post(api, url, {"body": "Invoice attached"}, key)
    with django_capture_on_commit_callbacks(execute=True):
        again = _post(api, url, {"body": "Invoice attached"}, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert [m.body for m in far_end.sent] == ["Invoice attached"]

    # The same key with another body is refused, naming the header; nothing is stored.
    conflict = _post(api, url, {"body": "Something else"}, key)
    assert conflict.status_code == 422 and "Idempotency-Key" in conflict.json()
    assert Message.objects.filter(conversation=conversation).count() == 1
    # Without a key, or with a new one, each POST is its own message.
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(url, {"body": "Invoice attached"}, format="json").status_code == 201
        assert _post(api, url, {"body": "Invoice attached"}, "k2").status_code == 201
    assert len(far_end.sent) == 3


def test_a_failed_request_keeps_no_key_and_keys_belong_to_their_user(
    conversation, api_for, queued_sends
):
    alice = UserFactory(company=conversation.company)
    bob = UserFactory(company=conversation.company)
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    assert _post(api_for(alice), url, {"body": ""}, "k").status_code == 400
    assert not IdempotencyKey.objects.exists()  # nothing half-written
    assert _post(api_for(alice), url, {"body": "hello"}, "k").status_code == 201
    assert _post(api_for(bob), url, {"body": "hello"}, "k").status_code == 201  # bob's own
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert _post(api_for(alice), url, {"body": "hello"}, "k" * 256).status_code == 400
    # Another company's conversation is a 404, key or not.
    stranger = UserFactory()
    assert _post(api_for(stranger), url, {"body": "hello"}, "k").status_code == 404


def test_expired_keys_start_afresh_and_are_purged(conversation, api_for, queued_sends):
    agent = UserFactory(company=conversation.company)
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    assert _post(api_for(agent), url, {"body": "one"}, "daily").status_code == 201
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = _post(api_for(agent), url, {"body": "two"}, "daily")  # a day later: a new request
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert sweep_outbox()["idempotency_purged"] == 1
    assert not IdempotencyKey.objects.exists()


def test_whatsapp_send_and_broadcast_create_take_a_key(
    company, admin_user, api_for, far_end, eager_celery, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.BROADCAST_RATE_PER_MINUTE = 1000
    number = WhatsAppNumberFactory(company=company)
    for phone in ("+4915112345678", "+4915199999999"):  # both wrote today: the window is open
        services.ingest_inbound(
            number, phone[1:], f"wamid.{phone}", services.Sender(address=phone, phone=phone), "Hi"
        )
    api = api_for(admin_user)
    send_url = f"/api/v1/whatsapp/numbers/{number.pk}/send/"
    payload = {"phone": "+4915112345678", "message": "Your table is ready"}
    with django_capture_on_commit_callbacks(execute=True):
        first = _post(api, send_url, payload, "send-1")
        again = _post(api, send_url, payload, "send-1")
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert [m.body for m in far_end.sent] == ["Your table is ready"]
    assert _post(api, send_url, {**payload, "message": "other"}, "send-1").status_code == 422

    far_end.clear()
    create = {"number": number.pk, "text": "We open at 9", "phones": "+4915199999999"}
    with django_capture_on_commit_callbacks(execute=True):
        first = _post(api, "/api/v1/whatsapp/broadcasts/", create, "bcast-1")
        again = _post(api, "/api/v1/whatsapp/broadcasts/", create, "bcast-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    from channels_integrations.models import Broadcast

    assert Broadcast.objects.filter(number=number).count() == 1
    assert [m.body for m in far_end.sent] == ["We open at 9"]
