"""The live inbox pages: list, filters and search, the conversation view with upward history,
reply, assign, close/reopen and read, all scoped to the user's company."""

import json

import pytest
from django.urls import reverse

from messaging.models import Conversation, Message
from messaging.tasks import deliver_message

from .factories import (
    ClientFactory,
    ConversationFactory,
    EmailAccountFactory,
    MessageFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db

HTMX_LIST = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "inbox-list"}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def member(client, admin_user):
    client.force_login(admin_user)
    return client


def _ids(response):
    return [c.pk for c in response.context["page"].object_list]


# ---------------------------------------------------------------- the list


def test_inbox_lists_the_company_conversations_in_the_dom_contract(
    member, company, other_company, admin_user
):
    ours = ConversationFactory(
        company=company,
        client=ClientFactory(company=company, name="Maria Lopez"),
        last_message_preview="Where is my parcel?",
        unread_count=2,
        assignee=admin_user,
    )
    ConversationFactory(company=other_company, last_message_preview="Somebody else's")
    response = member.get(reverse("inbox"))
    assert response.status_code == 200
    content = response.content.decode()
    assert '<ul id="conversation-list"' in content
    assert f'<li data-conversation-id="{ours.pk}"' in content
    assert "Maria Lopez" in content and "Where is my parcel?" in content
    assert "Somebody else's" not in content
    assert '<span class="count" title="Unread messages">2</span>' in content
    assert admin_user.display_name in content
    assert "WhatsApp" in content
    assert "data-realtime" not in content  # the indicator follows <html data-realtime>, set by JS
    assert 'class="live-indicator"' in content
    assert "js/inbox.js" in content


def test_list_partial_for_htmx_is_only_the_list(member, company):
    ConversationFactory(company=company, last_message_preview="partial hello")
    response = member.get(reverse("inbox"), **HTMX_LIST)
    content = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in content and "inbox-filters" not in content
    assert '<ul id="conversation-list"' in content and "partial hello" in content
    assert "HX-Request" in response["Vary"] and "HX-Target" in response["Vary"]
    # A history restore needs the whole page.
    restore = member.get(reverse("inbox"), HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX_LIST)
    assert "<html" in restore.content.decode()


def test_filters_platform_status_assignee_and_unread(member, company, admin_user, agent_user):
    wa_open = ConversationFactory(company=company, assignee=admin_user, unread_count=1)
    wa_closed = ConversationFactory(company=company, status=Conversation.Status.CLOSED)
    tg = ConversationFactory(
        company=company,
        source=TelegramAccountFactory(company=company),
        assignee=agent_user,
    )
    mail = ConversationFactory(
        company=company,
        source=EmailAccountFactory(company=company),
        unread_count=4,
    )

    def ids(**params):
        return set(_ids(member.get(reverse("inbox"), params)))

    everything = {wa_open.pk, wa_closed.pk, tg.pk, mail.pk}
    assert ids() == everything - {wa_closed.pk}  # the inbox shows open ones unless asked
    assert ids(status="all") == everything
    assert ids(platform="telegram") == {tg.pk}
    assert ids(platform="email") == {mail.pk}
    assert ids(status="closed") == {wa_closed.pk}
    assert ids(status="open") == everything - {wa_closed.pk}
    assert ids(assigned="mine") == {wa_open.pk}
    assert ids(assigned="unassigned", status="all") == {wa_closed.pk, mail.pk}
    assert ids(unread="1") == {wa_open.pk, mail.pk}
    assert ids(platform="whatsapp", status="open", assigned="mine", unread="1") == {wa_open.pk}
    # Unknown values are ignored rather than matching nothing.
    assert ids(platform="fax", status="maybe", assigned="theirs") == everything
    # The htmx partial filters the same way.
    assert set(_ids(member.get(reverse("inbox"), {"platform": "telegram"}, **HTMX_LIST))) == {tg.pk}


def test_search_by_client_name_phone_email_and_subject(member, company):
    maria = ConversationFactory(
        company=company,
        client=ClientFactory(company=company, name="Maria Lopez", phone="+4915123456789"),
    )
    jo = ConversationFactory(
        company=company,
        source=EmailAccountFactory(company=company),
        client=ClientFactory(company=company, name="Jo", email="jo@shop.example", phone=""),
        subject="Invoice 2231 overdue",
    )
    nobody = ConversationFactory(company=company, client=None)

    def ids(q):
        return set(_ids(member.get(reverse("inbox"), {"q": q})))

    assert ids("maria") == {maria.pk}
    assert ids("LOPEZ") == {maria.pk}
    assert ids("+49 151 2345") == {maria.pk}  # spaces in a phone are ignored
    assert ids("shop.example") == {jo.pk}
    assert ids("invoice 2231") == {jo.pk}
    assert ids("nothing like this") == set()
    assert nobody.pk in ids("")
    content = member.get(reverse("inbox"), {"q": "nothing like this"}).content.decode()
    assert "No conversation matches these filters." in content


def test_conversation_links_keep_the_filters(member, company):
    conversation = ConversationFactory(company=company)
    content = member.get(reverse("inbox"), {"status": "open", "q": "", "page": "1"}).content
    url = reverse("conversation_detail", args=[conversation.pk])
    assert f'href="{url}?status=open"' in content.decode()


def test_list_pages_by_fifty(member, company):
    number = WhatsAppNumberFactory(company=company)
    ConversationFactory.create_batch(51, company=company, source=number, client=None)
    first = member.get(reverse("inbox"))
    assert len(_ids(first)) == 50
    assert len(_ids(member.get(reverse("inbox"), {"page": 2}))) == 1
    assert "Older →" in first.content.decode()


@pytest.mark.parametrize("rows", [1, 50])
def test_list_runs_a_constant_number_of_queries(
    member, company, admin_user, rows, django_assert_num_queries
):
    number = WhatsAppNumberFactory(company=company)
    for i in range(rows):
        ConversationFactory(
            company=company,
            source=number,
            assignee=UserFactory(company=company) if i % 2 else admin_user,
            unread_count=i % 3,
        )
    # (the session comes from Redis: cached_db) user with company (accounts.backends), the bell
    # (unread, sound), count, rows (client and assignee joined), the rows' labels, the
    # company's labels (filter, bulk bar), saved views, members (bulk bar)
    with django_assert_num_queries(8):
        response = member.get(reverse("inbox"))
    assert len(_ids(response)) == rows
    # the partial has no sidebar; a search first probes each part with a LIMIT (matching
    # clients, their conversations, subjects, PostgreSQL's estimate of matching messages,
    # their conversations), finds each row's newest matching message (one query); the rows'
    # labels
    with django_assert_num_queries(10):
        response = member.get(reverse("inbox"), {"q": "Client", "status": "open"}, **HTMX_LIST)
    assert len(_ids(response)) == rows


# ---------------------------------------------------------------- the conversation view


def _thread(company, count, **kwargs):
    conversation = ConversationFactory(company=company, **kwargs)
    MessageFactory.create_batch(count, conversation=conversation)
    return conversation, list(conversation.messages.order_by("created_at", "id"))


def _message_ids(content: str, messages) -> list[int]:
    """The ids of `messages` in the order they appear in `content`."""
    found = [(content.find(f'data-message-id="{m.pk}"'), m.pk) for m in messages]
    return [pk for position, pk in sorted(found) if position >= 0]


def test_conversation_shows_newest_fifty_at_the_bottom_and_loads_earlier_upward(member, company):
    conversation, messages = _thread(company, 120)
    response = member.get(reverse("conversation_detail", args=[conversation.pk]))
    content = response.content.decode()
    assert '<ol id="messages"' in content
    assert _message_ids(content, messages) == [m.pk for m in messages[70:]]
    assert 'data-status="received"' in content
    assert f"?before={messages[70].pk}" in content and "Load earlier messages" in content

    url = reverse("conversation_messages", args=[conversation.pk])
    earlier = member.get(url, {"before": messages[70].pk}, **HTMX).content.decode()
    assert _message_ids(earlier, messages) == [m.pk for m in messages[20:70]]
    assert 'id="load-earlier"' in earlier and 'hx-swap-oob="true"' in earlier
    assert f"?before={messages[20].pk}" in earlier

    first = member.get(url, {"before": messages[20].pk}, **HTMX).content.decode()
    assert _message_ids(first, messages) == [m.pk for m in messages[:20]]
    assert "Load earlier messages" not in first  # the control is emptied: nothing before

    newest = member.get(url, **HTMX).content.decode()
    assert _message_ids(newest, messages) == [m.pk for m in messages[70:]]


def test_history_cursor_must_be_a_message_of_this_conversation(member, company):
    conversation, _ = _thread(company, 3)
    _, others = _thread(company, 1)
    url = reverse("conversation_messages", args=[conversation.pk])
    assert member.get(url, {"before": others[0].pk}).status_code == 404
    assert member.get(url, {"id": others[0].pk}).status_code == 404
    assert member.get(url, {"before": "abc"}).status_code == 400


def test_one_message_partial(member, company):
    conversation, messages = _thread(company, 2)
    url = reverse("conversation_messages", args=[conversation.pk])
    content = member.get(url, {"id": messages[1].pk}, **HTMX).content.decode()
    assert content.strip().startswith(f'<li data-message-id="{messages[1].pk}"')
    assert 'data-status="received"' in content
    assert f'data-message-id="{messages[0].pk}"' not in content


def test_opening_a_conversation_marks_it_read_but_the_list_partial_does_not(member, company):
    conversation = ConversationFactory(company=company, unread_count=3)
    url = reverse("conversation_detail", args=[conversation.pk])
    member.get(url, **HTMX_LIST)  # the list pane beside it, refreshed live
    conversation.refresh_from_db()
    assert conversation.unread_count == 3
    response = member.get(url)
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.unread_count == 0
    # The list beside the conversation marks the open one.
    assert 'class="conv-row is-current' in response.content.decode()


def test_read_endpoint_marks_read(member, company):
    conversation = ConversationFactory(company=company, unread_count=5)
    response = member.post(reverse("conversation_read", args=[conversation.pk]), **HTMX)
    assert response.status_code == 204
    conversation.refresh_from_db()
    assert conversation.unread_count == 0


def test_header_partial(member, company, admin_user):
    conversation = ConversationFactory(company=company, assignee=admin_user, subject="Refund")
    content = member.get(reverse("conversation_header", args=[conversation.pk])).content.decode()
    assert content.strip().startswith('<header id="conversation-header"')
    assert "Refund" in content and str(conversation.client) in content
    assert f'<option value="{admin_user.pk}" selected>' in content
    assert "EAAG-secret-access-token" not in content


# ---------------------------------------------------------------- reply


@pytest.fixture
def delay(queued_sends):
    return queued_sends


def test_reply_stores_a_queued_message_and_queues_the_send_task(
    member, company, admin_user, delay, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company)
    url = reverse("conversation_reply", args=[conversation.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(url, {"body": "  On its way!  "}, **HTMX)
    assert response.status_code == 200
    message = Message.objects.get(conversation=conversation)
    assert message.body == "On its way!"
    assert message.status == Message.Status.QUEUED
    assert message.direction == Message.Direction.OUTBOUND and message.author == admin_user
    assert delay == [(message.pk, None)]
    # The page adds the stored message itself (the same path as the realtime event).
    trigger = json.loads(response["HX-Trigger"])
    assert trigger == {"inbox:message-stored": {"id": message.pk}}
    content = response.content.decode()
    assert content.strip().startswith('<form id="reply-box"') and "errorlist" not in content
    conversation.refresh_from_db()
    assert conversation.last_message_preview == "On its way!"


def test_reply_without_htmx_redirects_back(member, company, delay):
    conversation = ConversationFactory(company=company)
    response = member.post(reverse("conversation_reply", args=[conversation.pk]), {"body": "Hi"})
    assert response.status_code == 302
    assert response["Location"] == reverse("conversation_detail", args=[conversation.pk])
    assert conversation.messages.count() == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "Write a message first."),
        ("   \n ", "Write a message first."),
        ("x" * 4097, "At most 4096"),
    ],
)
def test_reply_errors_are_shown_next_to_the_reply_box(member, company, delay, body, error):
    conversation = ConversationFactory(company=company)
    url = reverse("conversation_reply", args=[conversation.pk])
    response = member.post(url, {"body": body}, **HTMX)
    assert response.status_code == 400
    content = response.content.decode()
    assert '<form id="reply-box"' in content
    assert 'id="reply-errors"' in content and error in content
    assert 'aria-invalid="true"' in content
    assert not Message.objects.filter(conversation=conversation).exists()
    assert delay == []
    # Without htmx: the whole page, same error, still a 400.
    page = member.post(url, {"body": body})
    assert page.status_code == 400 and error in page.content.decode()
    assert '<ol id="messages"' in page.content.decode()


def test_reply_on_a_deactivated_channel_is_a_clear_400(member, company, delay):
    conversation = ConversationFactory(company=company)
    conversation.source.is_active = False
    conversation.source.save()
    response = member.post(
        reverse("conversation_reply", args=[conversation.pk]), {"body": "Hello"}, **HTMX
    )
    assert response.status_code == 400
    assert "deactivated" in response.content.decode()
    assert not conversation.messages.exists()


def test_reply_is_sent_by_the_channel_and_its_status_shown(
    member, company, far_end, delay, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=company)
    with django_capture_on_commit_callbacks(execute=True):
        member.post(
            reverse("conversation_reply", args=[conversation.pk]), {"body": "Sent?"}, **HTMX
        )
    message = conversation.messages.get()
    url = reverse("conversation_messages", args=[conversation.pk])
    assert 'data-status="queued"' in member.get(url, {"id": message.pk}).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        deliver_message(message.pk)  # what the worker runs
    assert [sent.body for sent in far_end.sent] == ["Sent?"]
    content = member.get(url, {"id": message.pk}).content.decode()
    assert 'data-status="sent"' in content and "Sent" in content


# ---------------------------------------------------------------- assign, close, reopen


def test_assign_to_me_to_a_member_and_unassign(member, company, admin_user, agent_user):
    conversation = ConversationFactory(company=company)
    url = reverse("conversation_assign", args=[conversation.pk])

    response = member.post(url, {"assignee": "me"}, **HTMX)
    assert response.status_code == 200
    assert response.content.decode().strip().startswith('<header id="conversation-header"')
    conversation.refresh_from_db()
    assert conversation.assignee == admin_user

    member.post(url, {"assignee": str(agent_user.pk)}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.assignee == agent_user

    member.post(url, {"assignee": ""}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.assignee is None


def test_assign_refuses_someone_outside_the_company(member, company, other_company, admin_user):
    conversation = ConversationFactory(company=company, assignee=admin_user)
    outsider = UserFactory(company=other_company)
    url = reverse("conversation_assign", args=[conversation.pk])
    for value in (str(outsider.pk), "999999", "bob"):
        response = member.post(url, {"assignee": value}, **HTMX)
        assert response.status_code == 400
        assert "Choose a member of your company." in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.assignee == admin_user


def test_close_and_reopen(member, company):
    conversation = ConversationFactory(company=company)
    url = reverse("conversation_status", args=[conversation.pk])
    response = member.post(url, {"status": "closed"}, **HTMX)
    assert response.status_code == 200 and 'data-action="reopen"' in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.CLOSED

    response = member.post(url, {"status": "open"})  # without htmx: back to the page
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN

    response = member.post(url, {"status": "archived"}, **HTMX)
    assert response.status_code == 400 and "Must be one of" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN


# ---------------------------------------------------------------- tenancy and methods


def test_another_company_conversation_is_a_404_everywhere(member, other_company, delay):
    theirs = ConversationFactory(company=other_company, unread_count=2)
    MessageFactory(conversation=theirs)
    for name in ("conversation_detail", "conversation_header", "conversation_messages"):
        assert member.get(reverse(name, args=[theirs.pk])).status_code == 404, name
    for name, data in (
        ("conversation_reply", {"body": "hi"}),
        ("conversation_assign", {"assignee": "me"}),
        ("conversation_status", {"status": "closed"}),
        ("conversation_read", {}),
    ):
        assert member.post(reverse(name, args=[theirs.pk]), data).status_code == 404, name
    theirs.refresh_from_db()
    assert theirs.unread_count == 2 and theirs.assignee is None
    assert theirs.status == Conversation.Status.OPEN and theirs.messages.count() == 1


def test_actions_need_post(member, company):
    conversation = ConversationFactory(company=company)
    for name in (
        "conversation_reply",
        "conversation_assign",
        "conversation_status",
        "conversation_read",
    ):
        assert member.get(reverse(name, args=[conversation.pk])).status_code == 405, name


def test_a_failed_reply_can_be_sent_again_from_the_page(
    member, company, far_end, eager_celery, django_capture_on_commit_callbacks
):
    from .far_end import graph_error

    conversation = ConversationFactory(company=company)
    far_end.script = [graph_error(131026)]
    with django_capture_on_commit_callbacks(execute=True):
        member.post(reverse("conversation_reply", args=[conversation.pk]), {"body": "Hi"}, **HTMX)
    message = conversation.messages.get()
    url = reverse("conversation_messages", args=[conversation.pk])
    content = member.get(url, {"id": message.pk}).content.decode()
    assert 'data-status="failed"' in content and "may not be on WhatsApp" in content
    retry_url = reverse("conversation_message_retry", args=[conversation.pk, message.pk])
    assert retry_url in content and "Send again" in content

    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(retry_url, **HTMX)
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == "sent" and [m.body for m in far_end.sent] == ["Hi"]
    # Sent: no button any more, and a second retry is refused in words.
    assert "Send again" not in member.get(url, {"id": message.pk}).content.decode()
    response = member.post(retry_url, **HTMX)
    assert response.status_code == 400 and "Only a failed message" in response.content.decode()
