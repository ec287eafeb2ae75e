"""Conversation states open / pending / snoozed / closed on the real PostgreSQL: what an agent
sets (page and API), what wakes a snoozed conversation (the customer's next message, the beat
task), an agent's reply reopening a closed one, and the events each change publishes."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from messaging import realtime, services
from messaging.models import Conversation
from messaging.services import Sender, ingest_inbound
from messaging.services.states import wake_due_conversations
from messaging.tasks import wake_snoozed_conversations

from .factories import ConversationFactory, WhatsAppNumberFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
SENDER = Sender(address="+4915199999999", name="Maria", phone="+4915199999999")


@pytest.fixture
def events(monkeypatch):
    """Events that left the server: [(event, data, groups)]."""
    sent = []
    lock = threading.Lock()

    def record(groups, payload):
        with lock:
            sent.append((payload["event"], payload["data"], list(groups)))

    monkeypatch.setattr(realtime, "publish_soon", record)
    return sent


def _named(events, name):
    return [data for event, data, _groups in events if event == name]


@pytest.fixture
def member(client, admin_user):
    client.force_login(admin_user)
    return client


def test_existing_values_stay_valid_and_the_database_refuses_unknown_ones(company):
    conversation = ConversationFactory(company=company, status="closed")
    assert conversation.status == Conversation.Status.CLOSED
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(status="archived")
    # A wake-up time belongs to a snoozed conversation only.
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(snoozed_until=timezone.now())


def test_snooze_until_a_time_then_beat_wakes_it(
    company, admin_user, events, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company)
    later = timezone.now() + timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.set_conversation_status(admin_user, conversation, "snoozed", snoozed_until=later)
    conversation.refresh_from_db()
    assert conversation.status == "snoozed" and conversation.snoozed_until == later
    changed = _named(events, "conversation.status_changed")
    assert changed[-1]["previous_status"] == "open" and changed[-1]["status"] == "snoozed"
    assert changed[-1]["changed_by_id"] == admin_user.pk

    # Not yet due: the task leaves it asleep.
    assert wake_snoozed_conversations() == 0
    conversation.refresh_from_db()
    assert conversation.status == "snoozed"

    # Its time has come: the beat task (as beat runs it) opens it and says so.
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert wake_due_conversations(now=later + timedelta(seconds=1)) == 1
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.snoozed_until is None
    woke = _named(events, "conversation.status_changed")
    assert (
        woke == [dict(woke[0], id=conversation.pk, status="open", previous_status="snoozed")]
        and woke[0]["changed_by_id"] is None
    )
    assert f"company.{company.pk}" in events[0][2]


def test_the_wake_task_is_on_the_beat_schedule():
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "messaging.tasks.wake_snoozed_conversations" in entries


def test_an_inbound_message_wakes_a_snoozed_conversation(
    events, django_capture_on_commit_callbacks
):
    number = WhatsAppNumberFactory()
    first = ingest_inbound(number, "+4915199999999", "wamid.1", SENDER, "Hello")
    conversation = first.conversation
    # Snoozed until the customer writes (no time): only their message wakes it.
    services.set_conversation_status(None, conversation, "snoozed")
    assert wake_due_conversations(now=timezone.now() + timedelta(days=365)) == 0
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        second = ingest_inbound(number, "+4915199999999", "wamid.2", SENDER, "Any news?")
    assert second.conversation.status == "open"
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.snoozed_until is None
    changed = _named(events, "conversation.status_changed")
    assert [(c["previous_status"], c["status"]) for c in changed] == [("snoozed", "open")]

    # A timed snooze is woken by the customer too, before its time.
    services.set_conversation_status(
        None, conversation, "snoozed", snoozed_until=timezone.now() + timedelta(days=2)
    )
    ingest_inbound(number, "+4915199999999", "wamid.3", SENDER, "Hello again")
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.snoozed_until is None


def test_an_inbound_message_to_an_open_conversation_announces_no_state_change(
    events, django_capture_on_commit_callbacks
):
    number = WhatsAppNumberFactory()
    ingest_inbound(number, "t", "m1", SENDER, "one")
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        ingest_inbound(number, "t", "m2", SENDER, "two")
    assert _named(events, "conversation.status_changed") == []
    assert _named(events, "conversation.updated")


def test_bad_states_are_refused_naming_the_field(company, admin_user):
    from django.core.exceptions import ValidationError

    conversation = ConversationFactory(company=company)
    for status, until, field in [
        ("archived", None, "status"),
        ("closed", timezone.now() + timedelta(hours=1), "snoozed_until"),
        ("snoozed", timezone.now() - timedelta(minutes=1), "snoozed_until"),
    ]:
        with pytest.raises(ValidationError) as caught:
            services.set_conversation_status(admin_user, conversation, status, snoozed_until=until)
        assert field in caught.value.message_dict
    conversation.refresh_from_db()
    assert conversation.status == "open"


def test_agent_reply_to_a_closed_conversation_reopens_it_and_says_so(
    member, company, admin_user, queued_sends, events, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company, status="closed")
    page = member.get(reverse("conversation_detail", args=[conversation.pk]))
    assert "sending a reply reopens it" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(
            reverse("conversation_reply", args=[conversation.pk]), {"body": "Back again"}, **HTMX
        )
    assert response.status_code == 200
    assert 'data-role="reopened"' in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.status == "open"
    changed = _named(events, "conversation.status_changed")
    assert [(c["previous_status"], c["status"], c["changed_by_id"]) for c in changed] == [
        ("closed", "open", admin_user.pk)
    ]
    # A reply to an open conversation says nothing of the kind.
    response = member.post(
        reverse("conversation_reply", args=[conversation.pk]), {"body": "More"}, **HTMX
    )
    assert 'data-role="reopened"' not in response.content.decode()


def test_bot_reply_does_not_reopen(company, queued_sends):
    from .factories import BotFactory

    conversation = ConversationFactory(company=company, status="closed")
    bot = BotFactory(number=conversation.source)
    services.send_message(conversation, None, "Automatic", bot=bot)
    conversation.refresh_from_db()
    assert conversation.status == "closed"


def test_header_snooze_pending_and_reopen(member, company):
    conversation = ConversationFactory(company=company)
    url = reverse("conversation_status", args=[conversation.pk])

    response = member.post(url, {"status": "snoozed", "snooze": "reply"}, **HTMX)
    assert response.status_code == 200
    assert "until the customer writes" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.status == "snoozed" and conversation.snoozed_until is None

    response = member.post(url, {"status": "snoozed", "snooze": "1h"}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.snoozed_until > timezone.now() + timedelta(minutes=55)

    # A custom time in the past, or none at all: a 400 naming the problem, nothing changed.
    before = conversation.snoozed_until
    response = member.post(
        url, {"status": "snoozed", "snooze": "custom", "until": "2001-01-01T09:00"}, **HTMX
    )
    assert response.status_code == 400 and "future" in response.content.decode()
    response = member.post(url, {"status": "snoozed", "snooze": "custom", "until": ""}, **HTMX)
    assert response.status_code == 400
    response = member.post(url, {"status": "snoozed", "snooze": "forever"}, **HTMX)
    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.snoozed_until == before

    member.post(url, {"status": "pending"}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.status == "pending" and conversation.snoozed_until is None
    member.post(url, {"status": "open"}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.status == "open"


def test_inbox_defaults_to_open_and_filters_every_state(member, company):
    for status in ("open", "pending", "snoozed", "closed"):
        ConversationFactory(company=company, status=status, last_message_preview=status)

    def shown(**params):
        response = member.get(reverse("inbox"), params)
        return {c.last_message_preview for c in response.context["page"].object_list}

    assert shown() == {"open"}
    for status in ("pending", "snoozed", "closed"):
        assert shown(status=status) == {status}
    assert shown(status="all") == {"open", "pending", "snoozed", "closed"}
    page = member.get(reverse("inbox")).content.decode()
    assert '<option value="" selected>Open</option>' in page


def test_api_sets_states(admin_api, company):
    conversation = ConversationFactory(company=company)
    url = f"/api/v1/conversations/{conversation.pk}/status/"
    until = (timezone.now() + timedelta(days=1)).isoformat()
    response = admin_api.post(url, {"status": "snoozed", "snoozed_until": until}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "snoozed" and response.json()["snoozed_until"]
    listed = admin_api.get("/api/v1/conversations/", {"status": "snoozed"}).json()["results"]
    assert [row["id"] for row in listed] == [conversation.pk] and listed[0]["snoozed_until"]

    response = admin_api.post(url, {"status": "sleeping"}, format="json")
    assert response.status_code == 400 and "status" in response.json()
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = admin_api.post(url, {"status": "snoozed", "snoozed_until": past}, format="json")
    assert response.status_code == 400 and "snoozed_until" in response.json()
    response = admin_api.post(url, {"status": "pending"}, format="json")
    assert response.json()["status"] == "pending" and response.json()["snoozed_until"] is None


def test_api_status_of_another_companys_conversation_is_404(admin_api, other_company):
    foreign = ConversationFactory(company=other_company)
    response = admin_api.post(
        f"/api/v1/conversations/{foreign.pk}/status/", {"status": "closed"}, format="json"
    )
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == "open"


def test_wake_skips_rows_another_worker_holds(company):
    """Two beat runs at once (a slow one and the next): rows one holds are left to it."""
    conversation = ConversationFactory(company=company)
    Conversation.objects.filter(pk=conversation.pk).update(
        status="snoozed", snoozed_until=timezone.now() - timedelta(minutes=1)
    )
    assert connection.in_atomic_block  # the test's transaction; the task runs inside it
    assert wake_due_conversations() == 1
    assert wake_due_conversations() == 0
