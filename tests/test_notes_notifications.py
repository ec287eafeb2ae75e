"""Private notes and notifications on the real PostgreSQL, through the real channel path (the
WhatsApp Cloud API's far end at the wire, tests.far_end.GraphFake):

- a note shows in the thread as a private note, never reaches the customer by any send path,
  leaves the conversation's preview, unread count and reply window alone;
- `@username` mentions notify those colleagues (of the same company only);
- each trigger stores a notification: assigned to me, new message in my conversation, a send
  of mine failed, a connection failed (admins), muted kinds excepted;
- the bell, the list page, mark read / all read, preferences (page and API), tenancy.
"""

import itertools
import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from messaging import services
from messaging.models import Message
from messaging.services.inbox import Inbound, Sender, ingest_inbound_many
from messaging.tasks import deliver_message, sweep_outbox
from notifications import services as notifications
from notifications.models import Notification, Preference

from .factories import ConversationFactory, MessageFactory, UserFactory, WhatsAppNumberFactory
from .far_end import graph_error
from .test_connection_alerts import pushed  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def member(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def colleague(company):
    return UserFactory(company=company, username="maria", first_name="Maria", last_name="Lopez")


def _note(member, conversation, body, capture):
    with capture(execute=True):
        return member.post(
            reverse("conversation_note", args=[conversation.pk]), {"body": body}, **HTMX
        )


# ---------------------------------------------------------------- notes


def test_a_note_shows_in_the_thread_and_never_reaches_the_customer(
    member, company, admin_user, far_end, eager_celery, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company, unread_count=2)
    MessageFactory(conversation=conversation, body="Where is my order?")
    conversation.refresh_from_db()
    before = (
        conversation.last_message_preview,
        conversation.unread_count,
        conversation.last_message_at,
        conversation.last_inbound_at,
    )

    response = _note(
        member, conversation, "VIP customer, be quick", django_capture_on_commit_callbacks
    )
    assert response.status_code == 200
    note = Message.objects.get(conversation=conversation, direction="note")
    assert json.loads(response["HX-Trigger"]) == {"inbox:message-stored": {"id": note.pk}}
    assert note.author == admin_user and note.body == "VIP customer, be quick"
    assert note.external_id is None and note.status != "queued"

    html = member.get(
        reverse("conversation_messages", args=[conversation.pk]), {"id": note.pk}
    ).content.decode()
    assert 'data-kind="note"' in html and "Private note" in html and "VIP customer" in html

    conversation.refresh_from_db()
    after = (
        conversation.last_message_preview,
        conversation.unread_count,
        conversation.last_message_at,
        conversation.last_inbound_at,
    )
    assert after == before  # preview, unread, the list's order, the reply window: unchanged
    page = member.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
    assert 'data-compose-mode="note"' in page and 'id="note-box"' in page

    # Every send path: the sweeper, the delivery task itself, an agent's retry.
    with django_capture_on_commit_callbacks(execute=True):
        sweep_outbox()
        deliver_message(note.pk)
    with pytest.raises(ValidationError):
        services.retry_message(admin_user, note)
    assert far_end.sent == []
    note.refresh_from_db()
    assert note.status == "received" and note.send_attempts == 0
    assert not Message.objects.filter(conversation=conversation, status="queued").exists()

    # A reply afterwards goes out, alone.
    with django_capture_on_commit_callbacks(execute=True):
        member.post(reverse("conversation_reply", args=[conversation.pk]), {"body": "Hi!"}, **HTMX)
    assert [sent.body for sent in far_end.sent] == ["Hi!"]


def test_a_note_is_not_a_reply_a_closed_window_stays_closed(
    member, company, django_capture_on_commit_callbacks, delay_sends
):
    long_ago = timezone.now() - timedelta(days=3)
    conversation = ConversationFactory(company=company, last_inbound_at=long_ago)
    assert (
        _note(
            member, conversation, "Call them instead", django_capture_on_commit_callbacks
        ).status_code
        == 200
    )
    conversation.refresh_from_db()
    assert conversation.last_inbound_at == long_ago
    reply = member.post(
        reverse("conversation_reply", args=[conversation.pk]), {"body": "Hello?"}, **HTMX
    )
    assert reply.status_code == 400 and "window is closed" in reply.content.decode()
    assert delay_sends == []


@pytest.fixture
def delay_sends(queued_sends):
    return queued_sends


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "Write the note first."),
        ("   ", "Write the note first."),
        ("x" * 10_001, "At most 10000"),
    ],
)
def test_bad_notes_are_a_400_naming_the_problem_and_store_nothing(
    member, company, body, error, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company)
    response = _note(member, conversation, body, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert error in response.content.decode() and 'id="note-box"' in response.content.decode()
    assert not conversation.messages.exists()


def test_a_mention_notifies_the_colleague_not_the_author_nor_another_company(
    member, company, admin_user, colleague, other_company, django_capture_on_commit_callbacks
):
    UserFactory(company=other_company, username="olga")
    conversation = ConversationFactory(company=company, client__name="Hamburg Hafen GmbH")
    body = f"@maria can you call them? cc @olga @{admin_user.username} mail@maria.example"
    _note(member, conversation, body, django_capture_on_commit_callbacks)

    note = Message.objects.get(direction="note")
    assert note.metadata["mentions"] == [colleague.pk]
    notification = Notification.objects.get()
    assert notification.user == colleague and notification.kind == "mentioned"
    assert notification.company == company and notification.conversation == conversation
    assert notification.title == f"{admin_user.display_name} mentioned you in “Hamburg Hafen GmbH”"
    assert notification.url == reverse("conversation_detail", args=[conversation.pk])


def test_the_note_box_lists_colleagues_for_mentions(member, company, colleague, other_company):
    UserFactory(company=other_company, username="olga")
    conversation = ConversationFactory(company=company)
    page = member.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
    assert 'data-username="maria"' in page and 'data-name="Maria Lopez"' in page
    assert 'data-username="olga"' not in page


def test_notes_api_creates_and_lists_and_messages_api_shows_them_as_notes(
    admin_api, company, colleague, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company)
    url = f"/api/v1/conversations/{conversation.pk}/notes/"
    with django_capture_on_commit_callbacks(execute=True):
        created = admin_api.post(url, {"body": "Ask @maria"}, format="json")
    assert created.status_code == 201
    assert created.json()["body"] == "Ask @maria" and created.json()["mentions"] == [colleague.pk]
    assert [row["id"] for row in admin_api.get(url).json()["results"]] == [created.json()["id"]]
    messages = admin_api.get(f"/api/v1/conversations/{conversation.pk}/messages/").json()
    assert [row["direction"] for row in messages["results"]] == ["note"]
    bad = admin_api.post(url, {"body": ""}, format="json")
    assert bad.status_code == 400 and "body" in bad.json()
    assert Notification.objects.filter(user=colleague, kind="mentioned").count() == 1


# ---------------------------------------------------------------- triggers


def test_assigning_notifies_the_assignee_but_not_someone_assigning_themselves(
    member, company, admin_user, colleague, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company, client__name="Kiel")
    url = reverse("conversation_assign", args=[conversation.pk])
    with django_capture_on_commit_callbacks(execute=True):
        member.post(url, {"assignee": str(colleague.pk)}, **HTMX)
        member.post(url, {"assignee": "me"}, **HTMX)
    notification = Notification.objects.get()
    assert notification.user == colleague and notification.kind == "assigned"
    assert notification.title == f"{admin_user.display_name} assigned you “Kiel”"


def test_an_inbound_message_notifies_the_assignee(
    company, colleague, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(
        company=company, assignee=colleague, client__phone="+4915199999999"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_inbound(
            conversation.source,
            conversation.external_thread_id,
            "wamid.in-1",
            Sender(address="4915199999999", phone="+4915199999999", name="Kunde"),
            "Is it shipped yet?",
        )
    notification = Notification.objects.get()
    assert notification.user == colleague and notification.kind == "new_message"
    assert notification.body == "Is it shipped yet?"


def test_the_statement_tells_exactly_whom_the_rules_say_for_every_kind_of_user(
    company, other_company
):
    """Every combination of what decides (active, company, role, preference, being the actor),
    for an ordinary kind and an admins' kind: the statement's recipients are those of the
    rules as written in Python here."""
    people = []
    for active, theirs, role, muted in itertools.product(
        (True, False),
        (company, other_company),
        (Role.ADMIN, Role.AGENT),
        (None, [], ["mentioned"], ["connection_failed"], ["mentioned", "connection_failed"]),
    ):
        user = UserFactory(company=theirs, role=role, is_active=active)
        if muted is not None:
            Preference.objects.create(user=user, company=theirs, muted_kinds=muted)
        people.append((user, active, theirs == company, role, muted or []))
    actor = people[0][0]
    for kind in ("mentioned", "connection_failed"):
        for actor_id in (None, actor.pk):
            expected = {
                user.pk
                for user, active, ours, role, muted in people
                if active
                and ours
                and user.pk != actor_id
                and (kind != "connection_failed" or role == Role.ADMIN)
                and kind not in muted
            }
            rows = notifications.notify_each(
                kind,
                [{"user_id": user.pk, "subject": "S"} for user, *_ in people],
                company_id=company.pk,
                actor_id=actor_id,
            )
            assert {row.user_id for row in rows} == expected
            assert expected  # the matrix tells someone each time
    assert Notification.objects.filter(company=other_company).count() == 0


def test_a_batch_of_inbound_messages_tells_each_assignee_of_each_in_one_statement(
    company, colleague, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    calls = []  # notify_each is one statement (the test above counts it)
    notify_each = notifications.notify_each
    monkeypatch.setattr(
        notifications, "notify_each", lambda *a, **kw: calls.append(a) or notify_each(*a, **kw)
    )

    number = WhatsAppNumberFactory(company=company)
    theirs, mine, nobodys = (
        ConversationFactory(company=company, source=number, assignee=assignee, client__phone=phone)
        for assignee, phone in (
            (colleague, "+4915199990001"),
            (admin_user, "+4915199990002"),
            (None, "+4915199990003"),
        )
    )

    def inbound(conversation, n, body, notice=False):
        phone = str(conversation.client.phone)
        sender = Sender(address=phone.lstrip("+"), phone=phone, name="Kunde")
        return Inbound(conversation.external_thread_id, f"wamid.batch-{n}", sender, body,
                       notice=notice)  # fmt: skip

    batch = [
        inbound(theirs, 1, "Is it shipped yet?"),
        inbound(mine, 2, "Invoice please"),
        inbound(nobodys, 3, "Hello?"),
        inbound(theirs, 4, "Changed my number", notice=True),  # a notice tells nobody
        inbound(theirs, 5, "Hello again"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        ingest_inbound_many(number, batch)
    told = Notification.objects.filter(kind="new_message").order_by("pk")
    assert [(n.user_id, n.body, n.conversation_id) for n in told] == [
        (colleague.pk, "Is it shipped yet?", theirs.pk),
        (admin_user.pk, "Invoice please", mine.pk),
        (colleague.pk, "Hello again", theirs.pk),
    ]
    assert [n.subject for n in told] == [theirs.client.name, mine.client.name, theirs.client.name]
    assert [(kind, len(items)) for kind, items in calls] == [("new_message", 3)]

    # The same messages again (a redelivered webhook): stored once, told once.
    with django_capture_on_commit_callbacks(execute=True):
        ingest_inbound_many(number, batch)
    assert Notification.objects.filter(kind="new_message").count() == 3


def test_a_failed_send_notifies_its_author(
    member, company, admin_user, far_end, django_capture_on_commit_callbacks, delay_sends
):
    conversation = ConversationFactory(company=company)
    with django_capture_on_commit_callbacks(execute=True):
        member.post(reverse("conversation_reply", args=[conversation.pk]), {"body": "Hi"}, **HTMX)
    message = conversation.messages.get()
    far_end.script.append(graph_error(131026, message="Message undeliverable"))
    with django_capture_on_commit_callbacks(execute=True):
        deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == "failed"
    notification = Notification.objects.get()
    assert notification.user == admin_user and notification.kind == "send_failed"
    assert "was not sent" in notification.title
    assert notification.subject == conversation.client.name  # named by the client


def test_muted_kinds_are_not_stored(
    company, colleague, admin_user, django_capture_on_commit_callbacks
):
    Preference.objects.create(user=colleague, company=company, muted_kinds=["assigned"])
    conversation = ConversationFactory(company=company)
    with django_capture_on_commit_callbacks(execute=True):
        services.assign_conversation(admin_user, conversation, colleague)
    assert not Notification.objects.exists()


def test_one_statement_tells_only_who_may_be_told_by_the_clients_name_with_their_count(
    company,
    other_company,
    colleague,
    admin_user,
    pushed,  # noqa: F811
    django_assert_num_queries,
    django_capture_on_commit_callbacks,
):
    """notify_each (every inbound message of an assigned conversation runs it): one statement
    picks the recipients, names the subject, stores the rows in order and counts unread."""
    _notify(colleague), _notify(colleague)  # two unread already
    _notify(colleague, read_at=timezone.now())  # read: not counted
    muted = UserFactory(company=company)
    Preference.objects.create(user=muted, company=company, muted_kinds=["assigned"])
    gone = UserFactory(company=company, is_active=False)
    stranger = UserFactory(company=other_company)
    named = ConversationFactory(company=company, client__name="Kiel")
    nameless = ConversationFactory(company=company, client__name="", subject="Order 42")
    foreign = ConversationFactory(company=other_company, client__name="Secret GmbH")
    about_named = notifications.about_conversation(named)
    items = [
        {"user_id": colleague.pk, "body": "first", **about_named},
        {"user_id": colleague.pk, "body": "second", **notifications.about_conversation(nameless)},
        # Another company's client is never read, whatever the caller names.
        {"user_id": colleague.pk, "body": "third", "subject": "As named", "client_id": foreign.client_id},
        *({"user_id": user.pk, "body": "no", **about_named} for user in (muted, gone, stranger)),
        {"user_id": admin_user.pk, "body": "the actor", **about_named},
    ]  # fmt: skip
    with django_assert_num_queries(2), django_capture_on_commit_callbacks(execute=True):
        rows = notifications.notify_each(  # the statement, and the actor's name
            "assigned", items, company_id=company.pk, actor_id=admin_user.pk
        )

    told = [("Kiel", "first"), ("Order 42", "second"), ("As named", "third")]
    assert [(row.user_id, row.subject, row.body) for row in rows] == [
        (colleague.pk, *pair) for pair in told
    ]
    stored = Notification.objects.filter(body__in=["first", "second", "third", "no", "the actor"])
    assert list(stored.order_by("pk").values_list("pk", "user_id", "subject", "actor_id")) == [
        (row.pk, colleague.pk, row.subject, admin_user.pk) for row in rows
    ]
    assert rows[0].url == about_named["url"] and rows[0].conversation_id == named.pk
    created = [(data, groups) for event, data, groups in pushed if event == "notification.created"]
    assert [groups for _data, groups in created] == [[f"user.{colleague.pk}"]] * 3
    assert [data["unread_count"] for data, _groups in created] == [5, 5, 5]
    assert Notification.objects.filter(user=colleague, read_at=None).count() == 5
    assert str(created[0][0]["title"]) == f"{admin_user.display_name} assigned you “Kiel”"


# ---------------------------------------------------------------- the bell, the pages, the API


def _notify(user, **fields):
    return Notification.objects.create(
        company_id=user.company_id,
        user=user,
        kind=fields.pop("kind", "assigned"),
        subject="Kiel",
        **fields,
    )


def test_the_bell_counts_unread_and_the_list_marks_read(member, admin_user, company):
    conversation = ConversationFactory(company=company)
    first = _notify(admin_user, conversation=conversation, url=f"/inbox/{conversation.pk}/")
    _notify(admin_user)
    _notify(UserFactory(company=company))  # someone else's
    page = member.get(reverse("dashboard")).content.decode()
    assert 'id="notification-bell" data-unread="2"' in page

    listing = member.get(reverse("notifications")).content.decode()
    assert listing.count("data-notification-id=") == 2
    opened = member.post(reverse("notification_open", args=[first.pk]))
    assert opened.status_code == 302 and opened["Location"] == f"/inbox/{conversation.pk}/"
    first.refresh_from_db()
    assert first.read_at is not None
    assert 'data-unread="1"' in member.get(reverse("dashboard")).content.decode()

    partial = member.get(reverse("notifications"), {"partial": "1"}).content.decode()
    assert 'data-unread-count="1"' in partial and "Mark all read" in partial
    member.post(reverse("notifications_read_all"))
    assert not Notification.objects.filter(user=admin_user, read_at=None).exists()


def test_the_bell_says_99_plus_from_a_hundred_unread_and_counts_exactly_below(
    member,
    admin_user,
    company,
    admin_api,
    pushed,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    """Unread notifications are counted up to UNREAD_COUNTED (a busy agent's thousands cost
    every inbound message a count of them): the bell, the events and the API say "that many
    or more" from there, and the exact number below it."""
    from notifications.models import UNREAD_COUNTED

    Notification.objects.bulk_create(
        Notification(company_id=company.pk, user=admin_user, kind="assigned", subject=f"#{n}")
        for n in range(UNREAD_COUNTED + 40)
    )
    page = member.get(reverse("dashboard")).content.decode()
    assert f'data-unread="{UNREAD_COUNTED}"' in page
    assert f">{UNREAD_COUNTED - 1}+</span>" in page
    partial = member.get(reverse("notifications"), {"partial": "1"}).content.decode()
    assert f'data-unread-count="{UNREAD_COUNTED}"' in partial

    conversation = ConversationFactory(company=company)

    def assigned_and_counted() -> int:
        """One more notification; the unread count its event carried."""
        pushed.clear()
        with django_capture_on_commit_callbacks(execute=True):
            notifications.notify_each(
                "assigned",
                [{"user_id": admin_user.pk, "subject": "Kiel", "conversation_id": conversation.pk}],
                company_id=company.pk,
            )
        [(_event, data, _groups)] = [sent for sent in pushed if sent[0] == "notification.created"]
        return data["unread_count"]

    assert assigned_and_counted() == UNREAD_COUNTED

    # Below the cap every number is exact again, the new one counted with the rest.
    unread = Notification.objects.filter(user=admin_user, read_at=None).order_by("pk")
    keep = list(unread.values_list("pk", flat=True)[:97])
    Notification.objects.filter(user=admin_user).exclude(pk__in=keep).update(read_at=timezone.now())
    assert assigned_and_counted() == 98
    page = member.get(reverse("dashboard")).content.decode()
    assert 'data-unread="98"' in page and ">98</span>" in page
    marked = admin_api.post("/api/v1/notifications/read-all/")
    assert marked.status_code == 200 and marked.json() == {"marked": 98, "unread_count": 0}


def test_opening_a_conversation_reads_what_told_me_about_it_and_only_that(
    member,
    admin_user,
    company,
    admin_api,
    pushed,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    opened, other = ConversationFactory.create_batch(2, company=company)
    mine = [
        _notify(admin_user, conversation=opened, kind=kind) for kind in ("assigned", "new_message")
    ]
    waiting = _notify(admin_user, conversation=other)
    colleagues = _notify(UserFactory(company=company), conversation=opened)
    with django_capture_on_commit_callbacks(execute=True):
        assert member.get(reverse("conversation_detail", args=[opened.pk])).status_code == 200
    assert set(Notification.objects.filter(read_at=None)) == {waiting, colleagues}
    read = [data for event, data, _groups in pushed if event == "notification.read"]
    assert [(sorted(data["ids"]), data["unread_count"]) for data in read] == [
        (sorted(n.pk for n in mine), 1)
    ]
    assert 'data-unread="1"' in member.get(reverse("dashboard")).content.decode()

    # Opening it again changes nothing and tells nobody; the API's "read" does the same.
    with django_capture_on_commit_callbacks(execute=True):
        member.get(reverse("conversation_detail", args=[opened.pk]))
    assert len([event for event, *_ in pushed if event == "notification.read"]) == 1
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_api.post(f"/api/v1/conversations/{other.pk}/read/")
    assert answer.status_code == 200
    waiting.refresh_from_db()
    assert waiting.read_at is not None


def test_another_users_notification_is_a_404(member, company, other_company):
    theirs = _notify(UserFactory(company=company))
    foreign = _notify(UserFactory(company=other_company))
    for notification in (theirs, foreign):
        assert member.post(reverse("notification_open", args=[notification.pk])).status_code == 404
        notification.refresh_from_db()
        assert notification.read_at is None


def test_notifications_api_list_read_read_all_and_preferences(admin_api, admin_user, company):
    one, two = _notify(admin_user), _notify(admin_user, kind="mentioned")
    other = _notify(UserFactory(company=company))
    listing = admin_api.get("/api/v1/notifications/").json()
    assert [row["id"] for row in listing["results"]] == [two.pk, one.pk]
    assert listing["results"][0]["title"] == "Someone mentioned you in “Kiel”"
    read = admin_api.post(f"/api/v1/notifications/{one.pk}/read/")
    assert read.status_code == 200 and read.json()["read"] is True
    assert [
        r["id"] for r in admin_api.get("/api/v1/notifications/?unread=1").json()["results"]
    ] == [two.pk]
    assert admin_api.post(f"/api/v1/notifications/{other.pk}/read/").status_code == 404
    assert admin_api.post("/api/v1/notifications/read-all/").json() == {
        "marked": 1,
        "unread_count": 0,
    }

    prefs = admin_api.get("/api/v1/notifications/preferences/").json()
    assert prefs["muted_kinds"] == [] and prefs["sound"] is False and "mentioned" in prefs["kinds"]
    changed = admin_api.patch(
        "/api/v1/notifications/preferences/",
        {"muted_kinds": ["new_message"], "sound": True},
        format="json",
    )
    assert changed.status_code == 200 and changed.json()["muted_kinds"] == ["new_message"]
    bad = admin_api.patch(
        "/api/v1/notifications/preferences/", {"muted_kinds": ["nope"]}, format="json"
    )
    assert bad.status_code == 400 and "muted_kinds" in bad.json()
    preference = Preference.objects.get(user=admin_user)
    assert preference.muted_kinds == ["new_message"] and preference.sound is True


def test_preferences_page_saves_kinds_and_sound(member, admin_user):
    url = reverse("notification_settings")
    page = member.get(url).content.decode()
    assert 'value="connection_failed"' in page  # an admin may choose connection failures
    response = member.post(url, {"kinds": ["assigned", "mentioned"], "sound": "on"})
    assert response.status_code == 302
    preference = Preference.objects.get(user=admin_user)
    assert sorted(preference.muted_kinds) == [
        "connection_failed",
        "connection_waiting",
        "new_message",
        "send_failed",
    ]
    assert preference.sound
    assert 'data-sound="on"' in member.get(url).content.decode()
    assert member.post(url, {"kinds": ["bogus"]}).status_code == 400


def test_agents_are_not_offered_connection_failures(client, agent_user):
    client.force_login(agent_user)
    assert agent_user.role == Role.AGENT
    page = client.get(reverse("notification_settings")).content.decode()
    assert 'value="connection_failed"' not in page and 'value="assigned"' in page
