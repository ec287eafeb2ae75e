"""The inbox pipeline on the real PostgreSQL and Redis: one door in (ingest_inbound), one door
out (send_message + the send task). The only stand-in is the far end of a network this machine
cannot reach, replaced at the wire (tests.far_end: an HTTP server speaking the Graph API)."""

import datetime
import threading
import time
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from crm.models import Client
from messaging import realtime, services
from messaging.models import Conversation, Message
from messaging.services import Inbound, Sender, SourceInactive, ingest_inbound, ingest_inbound_many
from messaging.services.attachments import IncomingAttachment
from messaging.tasks import deliver_message

from .factories import (
    ClientFactory,
    ConversationFactory,
    EmailAccountFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)
from .far_end import graph_error, graph_unavailable
from .test_webhook_batches import REFUSE_POISON

SENDER = Sender(address="+4915199999999", name="Maria", phone="+4915199999999")


@pytest.fixture
def published():
    """Events really published on Redis, read back from the realtime channel."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(settings.REALTIME_CHANNEL)
    received = []

    def read(wait: float = 0.3) -> list[dict]:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.05)
            if message:
                received.extend(realtime.decode(message["data"]))
        return received

    yield read
    pubsub.close()
    client.close()


def _events(items, name):
    return [item for item in items if item["payload"]["event"] == name]


@pytest.mark.django_db
def test_ingest_creates_client_conversation_and_message_and_publishes(
    django_capture_on_commit_callbacks, published
):
    number = WhatsAppNumberFactory()
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_inbound(number, "+4915199999999", "wamid.1", SENDER, "Hello!")
    assert result.created
    conversation = result.conversation
    assert conversation.platform == "whatsapp" and conversation.source == number
    assert conversation.client.phone == "+4915199999999" and conversation.client.name == "Maria"
    conversation.refresh_from_db()
    assert conversation.unread_count == 1
    assert conversation.last_message_preview == "Hello!"
    events = published()
    created = _events(events, "message.created")
    assert len(created) == 1
    assert created[0]["groups"] == [f"company.{number.company_id}"]
    assert created[0]["payload"]["data"]["body"] == "Hello!"
    assert _events(events, "conversation.updated")[0]["payload"]["data"]["unread_count"] == 1


@pytest.mark.django_db
def test_ingesting_the_same_message_twice_stores_one_row_and_one_event(
    django_capture_on_commit_callbacks, published
):
    number = WhatsAppNumberFactory()
    with django_capture_on_commit_callbacks(execute=True):
        first = ingest_inbound(number, "t1", "wamid.dup", SENDER, "Hi")
    with django_capture_on_commit_callbacks(execute=True):
        second = ingest_inbound(number, "t1", "wamid.dup", SENDER, "Hi")
    assert first.created and not second.created
    assert second.message.pk == first.message.pk
    assert Message.objects.count() == 1
    first.conversation.refresh_from_db()
    assert first.conversation.unread_count == 1  # the duplicate counted nothing
    assert len(_events(published(), "message.created")) == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_ingesting_the_same_message_yield_one_row_and_one_event(published):
    number = WhatsAppNumberFactory()
    barrier = threading.Barrier(20)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(ingest_inbound(number, "+4915199999999", "wamid.race", SENDER, "Race"))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sum(result.created for result in results) == 1
    assert Message.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert Client.objects.count() == 1
    assert Conversation.objects.get().unread_count == 1
    assert len(_events(published(1.0), "message.created")) == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_new_messages_at_once_in_a_new_thread_all_land_in_one_conversation(published):
    """Every writer finds no thread and no client and tries to create them: one wins, the
    others' statements do nothing and run again, and see the winner's rows."""
    number = WhatsAppNumberFactory()
    barrier = threading.Barrier(20)
    results, errors = [], []

    def worker(index):
        try:
            barrier.wait()
            results.append(
                ingest_inbound(number, "+4915199999999", f"wamid.{index}", SENDER, f"No {index}")
            )
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert all(result.created for result in results) and len(results) == 20
    conversation = Conversation.objects.get()
    assert Client.objects.get().phone == "+4915199999999"
    assert conversation.client == Client.objects.get()
    assert conversation.unread_count == 20
    assert Message.objects.filter(conversation=conversation).count() == 20
    assert len({result.conversation.pk for result in results}) == 1
    assert len(_events(published(1.0), "message.created")) == 20


def _from(phone: str, wamid: str, body: str, **extra) -> Inbound:
    return Inbound(phone.lstrip("+"), wamid, Sender(address=phone, phone=phone), body, **extra)


def _thread(phone: str) -> list[str]:
    """The thread's messages as an agent reads them (the model's order)."""
    messages = Message.objects.filter(conversation__external_thread_id=phone.lstrip("+"))
    return list(messages.values_list("external_id", flat=True))


KNOWN, NEW = "+4915100000001", "+4915100000002"


@pytest.mark.django_db
def test_a_batch_lands_in_order_in_known_and_new_threads_each_message_once(
    django_capture_on_commit_callbacks, published
):
    """A webhook batch's messages go to PostgreSQL in one pipeline: a known thread's are
    stored at once, a new thread's are created after, and each thread still reads in the
    order they came; a duplicate stores nothing; an attachment lands with its message."""
    number = WhatsAppNumberFactory()
    earlier = ingest_inbound(number, KNOWN[1:], "wamid.k0", Sender(KNOWN, phone=KNOWN), "Hi")
    photo = IncomingAttachment(kind="image", filename="photo.jpg", content=b"\xff\xd8 a photo")
    batch = [
        _from(KNOWN, "wamid.k1", "Known, one"),
        _from(NEW, "wamid.n1", "New, one"),
        _from(KNOWN, "wamid.k2", "Known, two"),
        _from(NEW, "wamid.n2", "New, two"),
        _from(KNOWN, "wamid.k0", "Hi"),  # Meta delivered it again
        _from(NEW, "wamid.n3", "[image]", attachments=(photo,)),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        results = ingest_inbound_many(number, batch)

    assert [result.created for result in results] == [True, True, True, True, False, True]
    assert results[4].message.pk == earlier.message.pk
    assert _thread(KNOWN) == ["wamid.k0", "wamid.k1", "wamid.k2"]
    assert _thread(NEW) == ["wamid.n1", "wamid.n2", "wamid.n3"]
    known, new = earlier.conversation, Conversation.objects.get(external_thread_id=NEW[1:])
    known.refresh_from_db()
    assert known.unread_count == 3 and known.last_message_preview == "Known, two"
    assert new.unread_count == 3 and new.last_message_preview == "[image]"
    assert new.client.phone == NEW and Client.objects.count() == 2
    [attachment] = Message.objects.get(external_id="wamid.n3").attachments.all()
    assert attachment.filename == "photo.jpg" and attachment.file.read() == b"\xff\xd8 a photo"
    created = _events(published(1.0), "message.created")
    assert [event["payload"]["data"]["external_id"] for event in created] == [
        "wamid.k1", "wamid.n1", "wamid.k2", "wamid.n2", "wamid.n3",
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_batch_with_two_senders_in_one_thread_keeps_the_order_they_wrote_in():
    """A mail thread the company knows, written to by a client it does not know yet and
    then by one it knows: the unknown one's message (its client is created first) still
    reads before the known one's."""
    mailbox = EmailAccountFactory()
    ClientFactory(company=mailbox.company, phone="", email="known@example.com")
    known = Sender("known@example.com", name="Known", email="known@example.com")
    stranger = Sender("new@example.com", name="New", email="new@example.com")
    ingest_inbound(mailbox, "<t@example.com>", "<0@example.com>", known, "Opening", subject="Q")
    ingest_inbound_many(
        mailbox,
        [
            Inbound("<t@example.com>", "<1@example.com>", stranger, "Me too", subject="Q"),
            Inbound("<t@example.com>", "<2@example.com>", known, "Then me", subject="Q"),
        ],
    )
    thread = Message.objects.filter(conversation__external_thread_id="<t@example.com>")
    assert list(thread.values_list("body", flat=True)) == ["Opening", "Me too", "Then me"]
    assert Client.objects.filter(email="new@example.com").exists()


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_fails_midway_stores_none_of_it_and_the_next_one_goes_in(published):
    """A statement that fails in the pipeline (here a trigger refusing one message) fails
    the batch with PostgreSQL's reason, and nothing of it is stored or published (the
    webhook inbox then replays its deliveries one by one); the connection is usable at once."""
    number = WhatsAppNumberFactory()
    ingest_inbound(number, KNOWN[1:], "wamid.k0", Sender(KNOWN, phone=KNOWN), "Hi")
    batch = [
        _from(KNOWN, "wamid.k1", "Fine"),
        _from(KNOWN, "wamid.poison", "poison pill"),
        _from(NEW, "wamid.n1", "Fine too"),
    ]
    published(0.3)
    with connection.cursor() as cursor:
        cursor.execute(REFUSE_POISON)
    try:
        with pytest.raises(DatabaseError, match="disk says no to wamid.poison"):
            ingest_inbound_many(number, batch)
        assert _thread(KNOWN) == ["wamid.k0"] and _thread(NEW) == []
        assert Conversation.objects.get().unread_count == 1
        assert len(_events(published(0.5), "message.created")) == 1  # wamid.k0's alone
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_poison ON messaging_message")
            cursor.execute("DROP FUNCTION IF EXISTS test_refuse_poison()")  # outlives the test
    results = ingest_inbound_many(number, [batch[0], batch[2]])
    assert all(result.created for result in results)
    assert _thread(KNOWN) == ["wamid.k0", "wamid.k1"] and _thread(NEW) == ["wamid.n1"]


@pytest.mark.django_db
def test_clients_are_linked_by_identity_within_the_company():
    number = WhatsAppNumberFactory()
    known = ClientFactory(company=number.company, phone="+4915111111111", name="Known")
    ClientFactory(phone="+4915122222222")  # another company's client with the sender's phone
    a = ingest_inbound(
        number, "a", "m1", Sender(address="+4915111111111", phone="+4915111111111"), "x"
    )
    b = ingest_inbound(
        number, "b", "m2", Sender(address="+4915122222222", phone="+4915122222222", name="New"), "y"
    )
    assert a.conversation.client == known
    assert b.conversation.client.company == number.company and b.conversation.client.name == "New"

    telegram = TelegramAccountFactory(company=number.company)
    t1 = ingest_inbound(
        telegram,
        "777",
        "1",
        Sender(address="777", telegram_user_id=777, telegram_username="ann"),
        "hi",
    )
    t2 = ingest_inbound(telegram, "777", "2", Sender(address="777", telegram_user_id=777), "again")
    assert t1.conversation == t2.conversation
    assert t1.conversation.client.telegram_username == "ann"

    mailbox = EmailAccountFactory(company=number.company)
    e1 = ingest_inbound(
        mailbox,
        "<root@x>",
        "<root@x>",
        Sender(address="Ann@Example.org", email="Ann@Example.org"),
        "mail",
    )
    e2 = ingest_inbound(
        mailbox,
        "<other@x>",
        "<other@x>",
        Sender(address="ann@example.org", email="ann@example.org"),
        "mail 2",
    )
    assert e1.conversation.client == e2.conversation.client
    assert e1.conversation.client.email == "ann@example.org"


@pytest.mark.django_db
def test_same_thread_id_on_two_numbers_is_two_conversations():
    first, second = WhatsAppNumberFactory(), WhatsAppNumberFactory()
    a = ingest_inbound(first, "+4915199999999", "m1", SENDER, "x")
    b = ingest_inbound(second, "+4915199999999", "m1", SENDER, "x")
    assert a.conversation != b.conversation and a.created and b.created


@pytest.mark.django_db
def test_deactivated_source_receives_nothing():
    number = WhatsAppNumberFactory(is_active=False)
    with pytest.raises(SourceInactive):
        ingest_inbound(number, "t", "m", SENDER, "x")
    assert Message.objects.count() == 0 and Conversation.objects.count() == 0


@pytest.mark.django_db
def test_new_message_reopens_and_an_older_one_does_not_move_the_preview_back():
    from datetime import timedelta

    from django.utils import timezone

    number = WhatsAppNumberFactory()
    now = timezone.now()
    result = ingest_inbound(number, "t", "m1", SENDER, "newest", received_at=now)
    conversation = services.set_conversation_status(None, result.conversation, "closed")
    ingest_inbound(
        number, "t", "m0", SENDER, "older, delivered late", received_at=now - timedelta(minutes=5)
    )
    conversation.refresh_from_db()
    assert conversation.status == "open"
    assert conversation.unread_count == 2
    assert conversation.last_message_preview == "newest"
    assert conversation.last_message_at == now


@pytest.mark.django_db
def test_send_validates_body_and_stores_nothing_on_error(far_end):
    conversation = ConversationFactory()
    agent = UserFactory(company=conversation.company)
    for body, fragment in (("", "Write"), ("   ", "Write"), ("x" * 4097, "4096")):
        with pytest.raises(ValidationError) as error:
            services.send_message(conversation, agent, body)
        assert fragment in error.value.message_dict["body"][0]
    assert Message.objects.count() == 0
    services.send_message(conversation, agent, "x" * 4096)  # the limit itself is fine


@pytest.mark.django_db
def test_send_on_a_deactivated_number_is_refused():
    conversation = ConversationFactory(source__is_active=False)
    with pytest.raises(ValidationError) as error:
        services.send_message(conversation, None, "hello")
    assert "conversation" in error.value.message_dict


@pytest.mark.django_db
def test_send_queues_then_the_task_sends_once_and_publishes_each_change(
    far_end, eager_celery, django_capture_on_commit_callbacks, published
):
    conversation = ConversationFactory(client__phone="+4915133333333")
    agent = UserFactory(company=conversation.company)
    with django_capture_on_commit_callbacks(execute=True):
        message = services.send_message(conversation, agent, "On our way!")
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.external_id.startswith("wamid.fake.")
    assert message.sent_at is not None
    assert [(m.to_address, m.body) for m in far_end.sent] == [("+4915133333333", "On our way!")]
    assert far_end.sent[0].phone_number_id == conversation.source.cloud_phone_number_id
    message_events = [e for e in published() if e["payload"]["event"].startswith("message.")]
    statuses = [e["payload"]["data"]["status"] for e in message_events]
    assert {tuple(e["groups"]) for e in message_events} == {(f"company.{conversation.company_id}",)}
    assert statuses == ["queued", "sent"]

    deliver_message(message.pk)  # a duplicate task run: nothing more is sent
    assert len(far_end.sent) == 1


def _due_now(message):
    """The retry's delay has passed (eager tasks cannot wait for it)."""
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())


@pytest.mark.django_db
def test_transient_errors_are_retried_and_permanent_ones_fail_with_the_reason(
    far_end, eager_celery, django_capture_on_commit_callbacks, settings
):
    settings.SEND_MAX_ATTEMPTS = 3
    conversation = ConversationFactory()
    far_end.script = [graph_error(130429), graph_unavailable()]
    with django_capture_on_commit_callbacks(execute=True):
        message = services.send_message(conversation, None, "one")
    message.refresh_from_db()
    # What the agent sees meanwhile: still queued, and why it waits.
    assert message.status == "queued" and message.send_attempts == 1
    assert message.error.startswith("Retrying: WhatsApp rate limit (130429)")
    assert message.next_attempt_at > timezone.now()
    deliver_message(message.pk)  # a task arriving early (a redelivery) does not jump the wait
    assert far_end.requests == 1
    _due_now(message)
    deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == "queued" and "(503)" in message.error
    _due_now(message)
    deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == "sent" and message.error == "" and len(far_end.sent) == 1
    assert far_end.requests == 3

    far_end.clear()
    far_end.script = [graph_error(131026)]
    with django_capture_on_commit_callbacks(execute=True):
        message = services.send_message(conversation, None, "two")
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.error == "Message undeliverable: the recipient may not be on WhatsApp."
    assert far_end.requests == 1 and far_end.sent == []

    far_end.clear()
    far_end.script = [graph_unavailable()] * 3
    with django_capture_on_commit_callbacks(execute=True):
        message = services.send_message(conversation, None, "three")
    for _ in range(2):
        _due_now(message)
        deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == "failed" and message.error.startswith("Gave up after 3 attempts")


@pytest.mark.django_db
def test_a_failed_message_can_be_sent_again(
    far_end, eager_celery, django_capture_on_commit_callbacks, api_for
):
    conversation = ConversationFactory()
    agent = UserFactory(company=conversation.company)
    far_end.script = [graph_error(190)]
    with django_capture_on_commit_callbacks(execute=True):
        message = services.send_message(conversation, agent, "Your order shipped")
    message.refresh_from_db()
    assert message.status == "failed" and "access token" in message.error
    url = f"/api/v1/conversations/{conversation.pk}/messages/{message.pk}/retry/"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(agent).post(url)
    assert response.status_code == 200 and response.json()["status"] == "queued"
    message.refresh_from_db()
    assert message.status == "sent" and message.pk == response.json()["id"]
    assert [m.body for m in far_end.sent] == ["Your order shipped"]
    # Only a failed message: a second retry is refused, with the field named.
    response = api_for(agent).post(url)
    assert response.status_code == 400 and "message" in response.json()
    # Another company's message is a 404 like a missing one.
    stranger = UserFactory()
    assert api_for(stranger).post(url).status_code == 404


@pytest.mark.django_db
def test_delivery_status_only_moves_forward():
    message = ConversationFactory().messages.create(direction="out", status="queued", body="x")
    assert services.record_delivery_status(message.pk, "sent", external_id="wamid.9")
    assert services.record_delivery_status(message.pk, "read")
    assert not services.record_delivery_status(message.pk, "delivered")  # late, out of order
    assert not services.record_delivery_status(message.pk, "failed")
    message.refresh_from_db()
    assert message.status == "read" and message.read_at and message.external_id == "wamid.9"


def _converted_by_django(instance, computed: str) -> list:
    """What Django's own save would send for each field of an ingest INSERT."""
    from messaging.services.inbox import _insert_fields

    values = []
    for field in _insert_fields(type(instance), computed):
        value = field.pre_save(instance, True)
        values.append(None if value is None else field.get_db_prep_save(value, connection))
    return values


def _comparable(values: list) -> list:
    """Each value with its type; a JSON value's adapter by the value it wraps."""
    return [(type(value), getattr(value, "obj", value)) for value in values]


@pytest.mark.django_db
@hypothesis_settings(max_examples=60, deadline=None)
@given(
    body=st.text(max_size=40),
    external_id=st.text(max_size=20) | st.integers(),  # Django makes a text column's int a str
    name=st.text(max_size=20),
    attempts=st.integers(min_value=0, max_value=2**31 - 1),
    metadata=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    status=st.sampled_from(Message.Status),
    unread=st.integers(min_value=0, max_value=2**31 - 1),
    when=st.datetimes(timezones=st.just(datetime.UTC)),
    phone=st.sampled_from(["", "+4915199999999", "+380671234567"]),
)
def test_the_ingest_statement_gets_every_value_as_django_would_send_it(
    body, external_id, name, attempts, metadata, status, unread, when, phone
):
    """The ingest statement's values skip Django's conversion where it would change nothing
    (messaging.services.inbox._taken_as_is); whatever the values, they are Django's."""
    from messaging.services.inbox import _insert_params

    message = Message(
        direction=Message.Direction.INBOUND,
        external_id=external_id,
        sender_name=name,
        body=body,
        status=status,
        metadata=metadata,
        send_attempts=attempts,
        created_at=when,
        sent_at=when if attempts % 2 else None,
    )
    conversation = Conversation(
        company_id=1,
        platform="whatsapp",
        external_thread_id=name,
        status=Conversation.Status.OPEN,
        last_message_at=when,
        unread_count=unread,
        source_id=7,
        created_at=when,
        updated_at=when,
    )
    client = Client(
        company_id=1, name=name, phone=phone, email="", telegram_user_id=attempts or None
    )
    with mock.patch("django.utils.timezone.now", return_value=when):  # what a save fills in
        for instance, computed in (
            (message, "conversation"),
            (conversation, "client"),
            (client, ""),
        ):
            expected = _comparable(_converted_by_django(instance, computed))
            assert _comparable(_insert_params(instance, connection, computed)) == expected


@pytest.mark.django_db
def test_a_save_still_fills_in_the_time_a_message_was_stored():
    from messaging.services.inbox import _insert_fields, _insert_params

    before = timezone.now()
    params = _insert_params(Message(body="x", metadata={}), connection, "conversation")
    names = [field.name for field in _insert_fields(Message, "conversation")]
    assert before <= params[names.index("created_at")] <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_ingest_goes_on_after_a_failed_statement_and_after_a_reconnect():
    """The connection keeps its prepared cursor for the next statement (crm.db.upsert): a
    statement that failed on it, or a connection lost and opened again, changes nothing for
    the next message; and its statements are still counted by Django's query log."""
    from django.test.utils import CaptureQueriesContext

    from crm.db.upsert import prepared_cursor

    number = WhatsAppNumberFactory()
    first = ingest_inbound(number, "t1", "wamid.k1", SENDER, "one")
    kept = prepared_cursor().cursor
    assert prepared_cursor().cursor is kept  # one cursor while the connection lives
    with pytest.raises(DatabaseError), prepared_cursor() as failing:
        failing.execute("SELECT 1 / %s", [0])
    with CaptureQueriesContext(connection) as queries:
        second = ingest_inbound(number, "t1", "wamid.k2", SENDER, "two")
    assert second.created and second.conversation.pk == first.conversation.pk
    assert len(queries.captured_queries) == 1  # the one statement of a known thread, logged

    connection.close()  # as when PostgreSQL restarts; Django opens a new connection
    third = ingest_inbound(number, "t1", "wamid.k3", SENDER, "three")
    assert prepared_cursor().cursor is not kept
    assert third.created and third.message.body == "three"
    third.conversation.refresh_from_db()
    assert third.conversation.unread_count == 3
    bodies = third.conversation.messages.order_by("pk").values_list("body", flat=True)
    assert list(bodies) == ["one", "two", "three"]
