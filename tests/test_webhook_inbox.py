"""The durable webhook inbox (webhook_inbox): a signed delivery is stored exactly as it came
and answered at once; the drain (the worker's code, run here synchronously) ingests it through
the channel's idempotent receive function, in order per number; a delivery that fails is
retried, then parked with its reason for the platform admin; a drainer killed with SIGKILL in
the middle of a batch leaves nothing half-done and nothing doubled.

Failures are real: a PostgreSQL trigger refuses a message insert (what a full disk or a bad
constraint would do), nothing of ours is replaced."""

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from messaging.models import Conversation, Message, MessageReaction
from webhook_inbox import services
from webhook_inbox.models import Delivery

from .factories import WhatsAppNumberFactory
from .inbox import drain
from .processes import advisory_locks, database_url
from .test_whatsapp_cloud import PHONE_NUMBER_ID, _inbound_payload, _text, _webhook_url

pytestmark = pytest.mark.django_db

APP_SECRET = "app-secret-value"


@pytest.fixture
def number(company):
    return WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token="token",
        cloud_app_secret=APP_SECRET,
    )


def _post(client, number, payload):
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = client.post(
        _webhook_url(number),
        raw,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
    )
    return response, raw


def _reaction(target, emoji="👍", wamid="wamid.reaction.1"):
    return {
        "from": "4915112345678",
        "id": wamid,
        "timestamp": "1763900050",
        "type": "reaction",
        "reaction": {"message_id": target, "emoji": emoji},
    }


REFUSE_POISON = """
CREATE FUNCTION test_refuse_poison() RETURNS trigger AS $$
BEGIN
  IF NEW.body LIKE '%poison%' THEN RAISE EXCEPTION 'disk says no to %', NEW.external_id; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_refuse_poison BEFORE INSERT ON messaging_message
  FOR EACH ROW EXECUTE FUNCTION test_refuse_poison();
"""


def test_a_signed_delivery_is_stored_as_it_came_then_ingested_by_the_drain(client, number):
    response, raw = _post(client, number, _inbound_payload(_text()))
    assert response.status_code == 200 and response.json() == {"accepted": True}
    # Answered before anything was read: the delivery waits, byte for byte.
    assert not Message.objects.exists()
    stored = Delivery.objects.get()
    assert bytes(stored.body) == raw and stored.source_id == number.pk
    assert stored.company_id == number.company_id
    assert services.backlog()["waiting"] == 1

    assert drain()["stored"] == 1
    assert Message.objects.get().body == "Is my parcel on its way?"
    assert not Delivery.objects.exists() and services.backlog()["waiting"] == 0
    # Meta delivers it again: stored again, ingested once.
    _post(client, number, _inbound_payload(_text()))
    assert drain()["duplicates"] == 1
    assert Message.objects.count() == 1


def test_a_bad_signature_is_403_and_nothing_is_stored(client, number):
    raw = json.dumps(_inbound_payload(_text())).encode()
    response = client.post(
        _webhook_url(number),
        raw,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64,
    )
    assert response.status_code == 403
    assert not Delivery.objects.exists()


def test_order_is_kept_per_number(client, number):
    """A reaction delivered after its message is applied after it (the other way round, it
    would have nothing to land on)."""
    _post(client, number, _inbound_payload(_text(wamid="wamid.first")))
    _post(client, number, _inbound_payload(_reaction("wamid.first")))
    counts = drain()
    assert counts["stored"] == 1 and counts["reactions"] == 1
    assert MessageReaction.objects.get().message.external_id == "wamid.first"


def test_a_busy_number_does_not_keep_another_waiting(client, number, company, settings):
    """A number with a long backlog is drained a few batches at a time; another number's
    delivery, stored after all of it, goes in before that backlog is through."""
    settings.WEBHOOK_INBOX_BATCH = 2
    other = WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id="106540352242999",
        cloud_access_token="token",
        cloud_app_secret=APP_SECRET,
    )
    for n in range(3 * services.BATCHES_PER_TURN * 2):
        _post(client, number, _inbound_payload(_text(wamid=f"wamid.busy.{n}")))
    payload = _inbound_payload(_text(wamid="wamid.other"))
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "106540352242999"
    _post(client, other, payload)
    drained = []
    original = services.drain_source

    def recording(source, source_id, batch=None):
        drained.append(source_id)
        return original(source, source_id, batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "drain_source", recording)
        counts = drain()
    assert counts["stored"] == 3 * services.BATCHES_PER_TURN * 2 + 1
    batches_before_other = drained.index(other.pk)
    assert batches_before_other == services.BATCHES_PER_TURN  # a turn of the busy one, no more
    assert Message.objects.filter(conversation__source_id=other.pk).count() == 1


def test_one_drainer_per_number(client, number):
    """While another drainer holds the number (its batch in flight), this one leaves it."""
    _post(client, number, _inbound_payload(_text()))
    import psycopg

    with psycopg.connect(database_url(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [1, number.pk])
        assert services.drain_source("whatsapp_cloud", number.pk) is None
        assert not Message.objects.exists()
        # Let go before closing: a closed connection's backend releases its locks a moment later.
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [1, number.pk])
    assert drain()["stored"] == 1


def test_a_failing_delivery_is_retried_holds_back_later_ones_then_is_parked(
    client, number, settings
):
    settings.WEBHOOK_INBOX_MAX_ATTEMPTS = 3
    settings.WEBHOOK_INBOX_RETRY_SECONDS = 0
    with connection.cursor() as cursor:
        cursor.execute(REFUSE_POISON)
    _post(client, number, _inbound_payload(_text(wamid="wamid.poison", body="poison pill")))
    _post(client, number, _inbound_payload(_text(wamid="wamid.after", body="After it")))

    first = drain()
    assert first["failed"] == 1 and first.get("stored", 0) == 0
    poisoned = Delivery.objects.order_by("id").first()
    assert poisoned.attempts == 1 and poisoned.retry_at and not poisoned.parked_at
    assert "disk says no to wamid.poison" in poisoned.last_error
    # The one after it waits (order), it is not skipped.
    assert not Message.objects.exists() and Delivery.objects.count() == 2

    drain()
    last = drain()  # third attempt: parked, and the one behind it goes through
    assert last["parked"] == 1 and last["stored"] == 1
    assert Message.objects.get().external_id == "wamid.after"
    poisoned.refresh_from_db()
    assert poisoned.parked_at and poisoned.attempts == 3
    assert services.backlog() == {**services.backlog(), "waiting": 0, "parked": 1}

    # The platform admin sees it with its reason, and sends it round again once fixed.
    from django.test import Client

    from accounts.models import User

    admin_client = Client()
    admin_client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    page = admin_client.get(f"/admin/webhook_inbox/delivery/{poisoned.pk}/change/")
    assert page.status_code == 200 and b"disk says no to wamid.poison" in page.content
    listing = admin_client.get("/admin/webhook_inbox/delivery/")
    assert b"disk says no" in listing.content
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_poison ON messaging_message")
    admin_client.post(
        "/admin/webhook_inbox/delivery/",
        {"action": "retry", "_selected_action": [poisoned.pk]},
    )
    assert drain()["stored"] == 1
    assert set(Message.objects.values_list("external_id", flat=True)) == {
        "wamid.poison",
        "wamid.after",
    }
    assert not Delivery.objects.exists()


def test_a_deactivated_number_s_waiting_deliveries_are_dropped(client, number):
    _post(client, number, _inbound_payload(_text()))
    number.is_active = False
    number.save()
    assert drain()["dropped"] == 1
    assert not Message.objects.exists() and not Delivery.objects.exists()


DRAINER = """
import django; django.setup()
from webhook_inbox import services
services.drain()
"""

SLOW_INSERTS = """
CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$
BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_slow_insert BEFORE INSERT ON messaging_message
  FOR EACH ROW EXECUTE FUNCTION test_slow_insert();
"""


@pytest.mark.django_db(transaction=True)
def test_a_drainer_killed_mid_batch_leaves_nothing_half_done_and_nothing_doubled(client, company):
    from .factories import WhatsAppNumberFactory

    number = WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token="token",
        cloud_app_secret=APP_SECRET,
    )
    count = 60
    for n in range(count):
        _post(client, number, _inbound_payload(_text(wamid=f"wamid.k{n}", body=f"Message {n}")))
    assert Delivery.objects.count() == count
    with connection.cursor() as cursor:
        cursor.execute(SLOW_INSERTS)  # a batch takes > 1 s: time to kill it in the middle
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "WEBHOOK_INBOX_BATCH": "200",
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", DRAINER], env=env, cwd=settings.BASE_DIR, start_new_session=True
    )
    try:
        # Wait until it holds the number (its batch has begun), then let it insert a few.
        deadline = time.monotonic() + 60
        started = False
        while time.monotonic() < deadline and not started:
            started = bool(advisory_locks(others_only=True))
            time.sleep(0.05)
        assert started, "the drainer never started its batch"
        time.sleep(0.4)  # some 20 inserts into the batch (each takes 20 ms here)
        assert worker.poll() is None, "the batch ended before the kill"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    # PostgreSQL rolled the batch back with the dead connection: nothing half-done.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not advisory_locks():
            break
        time.sleep(0.05)
    assert Message.objects.count() == 0 and Delivery.objects.count() == count
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_slow_insert ON messaging_message")
        cursor.execute("DROP FUNCTION test_slow_insert()")

    assert drain()["stored"] == count
    assert Message.objects.count() == count
    assert Message.objects.values("external_id").distinct().count() == count
    assert Conversation.objects.get().unread_count == count
    assert not Delivery.objects.exists()
