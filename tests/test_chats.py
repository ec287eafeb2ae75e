"""Team chats: services, REST API and pages. Who gets which realtime event is checked here at
the publish boundary (messaging.realtime.publish_soon) and end to end over WebSockets in
test_chat_realtime.py."""

import threading
from urllib.parse import quote

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from messaging import realtime, services
from messaging.api.chats import IDEMPOTENCY_HEADER
from messaging.models import ChatMember, ChatMessage, Reaction, TeamChat

from .factories import (
    ChatMemberFactory,
    ChatMessageFactory,
    ReactionFactory,
    TeamChatFactory,
    UserFactory,
)
from .live import browser, daphne_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def published(monkeypatch):
    """Events that left the server: [(event, data, {user ids addressed}), ...]."""
    sent = []
    lock = threading.Lock()

    def record(groups, payload):
        users = {int(group.split(".", 1)[1]) for group in groups if group.startswith("user.")}
        assert not any(group.startswith("company.") for group in groups), "chat event to a company"
        with lock:
            sent.append((payload["event"], payload["data"], users))

    monkeypatch.setattr(realtime, "publish_soon", record)
    return sent


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run on_commit callbacks (the events) as a real commit would."""

    def run():
        return django_capture_on_commit_callbacks(execute=True)

    return run


@pytest.fixture
def alice(company):
    return UserFactory(company=company, username="alice", first_name="Alice")


@pytest.fixture
def bob(company):
    return UserFactory(company=company, username="bob", first_name="Bob")


@pytest.fixture
def carol(company):
    """Same company, in no chat."""
    return UserFactory(company=company, username="carol")


@pytest.fixture
def mallory(other_company):
    return UserFactory(company=other_company, username="mallory")


@pytest.fixture
def chat(company, alice, bob):
    chat = TeamChatFactory(company=company, name="Night shift", created_by=alice)
    ChatMemberFactory(chat=chat, user=alice)
    ChatMemberFactory(chat=chat, user=bob)
    return chat


def _events(published, name):
    return [(data, users) for event, data, users in published if event == name]


# ---------------------------------------------------------------- services


def test_create_chat_makes_the_creator_a_member_and_tells_the_members(
    alice, bob, carol, published, commit
):
    with commit():
        chat = services.create_chat(alice, name="  Night   shift ", members=[bob.pk, bob, alice])

    assert chat.name == "Night shift"
    assert chat.company_id == alice.company_id and chat.created_by == alice
    assert set(chat.members.values_list("username", flat=True)) == {"alice", "bob"}
    [(data, users)] = _events(published, "chat.created")
    assert users == {alice.pk, bob.pk}  # carol is not told
    assert data["id"] == chat.pk and data["member_count"] == 2
    assert [m["name"] for m in data["members"]] == ["Alice", "Bob"]


def test_a_chat_without_a_name_is_named_after_its_members(alice, bob):
    chat = services.create_chat(alice, members=[bob.pk])
    assert chat.name == "Alice, Bob"


def test_members_of_another_company_are_refused_naming_the_field(alice, mallory, published):
    with pytest.raises(ValidationError) as error:
        services.create_chat(alice, name="x", members=[mallory.pk])
    assert "members" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.create_chat(alice, name="x", members=[987654321])  # missing: the same answer
    assert "members" in error.value.message_dict
    assert not TeamChat.objects.exists()
    assert published == []


def test_send_validates_and_only_members_send(chat, alice, carol, published, commit):
    with pytest.raises(ValidationError) as error:
        services.send_chat_message(alice, chat, "   ")
    assert "body" in error.value.message_dict
    with pytest.raises(PermissionDenied):
        services.send_chat_message(carol, chat, "let me in")
    assert not ChatMessage.objects.exists()

    with commit():
        message = services.send_chat_message(alice, chat, " Who takes the next one? ")
    assert message.body == "Who takes the next one?"
    [(data, users)] = _events(published, "chat.message.created")
    assert users == {alice.pk, chat.memberships.exclude(user=alice).get().user_id}
    assert data["body"] == "Who takes the next one?" and data["author"]["id"] == alice.pk


def test_only_the_author_edits_and_reactions_survive_the_edit(chat, alice, bob, published, commit):
    message = ChatMessageFactory(chat=chat, author=alice, body="first")
    ReactionFactory(message=message, user=bob, emoji="👍")

    with pytest.raises(PermissionDenied):
        services.edit_chat_message(bob, message, "bob's words")
    with pytest.raises(ValidationError) as error:
        services.edit_chat_message(alice, message, "")
    assert "body" in error.value.message_dict

    with commit():
        services.edit_chat_message(alice, message, "second")
    message.refresh_from_db()
    assert message.body == "second" and message.edited_at is not None
    assert list(message.reactions.values_list("emoji", "user_id")) == [("👍", bob.pk)]
    [(data, users)] = _events(published, "chat.message.edited")
    assert users == {alice.pk, bob.pk}
    assert data["edited_at"] and data["reactions"][0]["user_ids"] == [bob.pk]

    with commit():  # the same text again is no edit
        services.edit_chat_message(alice, message, "second")
    assert len(_events(published, "chat.message.edited")) == 1


def test_reacting_twice_is_one_reaction_and_one_event(chat, alice, bob, published, commit):
    message = ChatMessageFactory(chat=chat, author=bob)
    with commit():
        _, added = services.add_reaction(alice, message, "👍")
        _, again = services.add_reaction(alice, message, " 👍 ")
    assert (added, again) == (True, False)
    assert Reaction.objects.filter(message=message).count() == 1
    [(data, users)] = _events(published, "reaction.added")
    assert users == {alice.pk, bob.pk}
    assert data == {
        "chat_id": chat.pk,
        "message_id": message.pk,
        "user_id": alice.pk,
        "emoji": "👍",
        "reactions": [{"emoji": "👍", "count": 1, "user_ids": [alice.pk], "names": ["Alice"]}],
    }

    with commit():
        _, removed = services.remove_reaction(alice, message, "👍")
        _, removed_again = services.remove_reaction(alice, message, "👍")
    assert (removed, removed_again) == (True, False)
    [(data, _users)] = _events(published, "reaction.removed")
    assert data["reactions"] == []

    for bad in ("", "a b", "x" * 33, "👍/"):
        with pytest.raises(ValidationError) as error:
            services.add_reaction(alice, message, bad)
        assert "emoji" in error.value.message_dict


def test_leaving_tells_the_rest_and_drops_the_chat_for_the_leaver(
    chat, alice, bob, published, commit
):
    with commit():
        services.leave_chat(bob, chat)
    assert list(chat.members.all()) == [alice]
    assert _events(published, "chat.left") == [({"id": chat.pk}, {bob.pk})]
    [(data, users)] = _events(published, "chat.updated")
    assert users == {alice.pk} and data["member_count"] == 1
    with pytest.raises(PermissionDenied):
        services.leave_chat(bob, chat)

    with commit():  # the last one out deletes the chat
        services.leave_chat(alice, chat)
    assert not TeamChat.objects.filter(pk=chat.pk).exists()


def test_delete_removes_the_tree_and_tells_every_member(chat, alice, bob, carol, published, commit):
    message = ChatMessageFactory(chat=chat, author=alice)
    ReactionFactory(message=message, user=bob)
    with pytest.raises(PermissionDenied):
        services.delete_chat(carol, chat)

    with commit(), CaptureQueriesContext(connection) as queries:
        data = services.delete_chat(bob, chat)

    assert data == {"id": chat.pk, "deleted_by": bob.pk}
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 1 and "messaging_teamchat" in deletes[0]  # the database cascades
    assert not ChatMember.objects.filter(chat_id=chat.pk).exists()
    assert not ChatMessage.objects.filter(pk=message.pk).exists()
    assert not Reaction.objects.exists()
    assert _events(published, "chat.deleted") == [
        ({"id": chat.pk, "deleted_by": bob.pk}, {alice.pk, bob.pk})
    ]


# ---------------------------------------------------------------- API: chats


def test_create_chat_api(api_for, alice, bob, mallory, published, commit):
    api = api_for(alice)
    with commit():
        response = api.post(
            "/api/v1/chats/", {"name": "Night shift", "members": [bob.pk]}, format="json"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Night shift" and body["member_count"] == 2
    assert {m["id"] for m in body["members"]} == {alice.pk, bob.pk}
    [(event, _users)] = _events(published, "chat.created")
    assert event == body  # the event carries the same shape as the API

    response = api.post("/api/v1/chats/", {"name": "x", "members": [mallory.pk]}, format="json")
    assert response.status_code == 400 and "members" in response.json()
    response = api.post("/api/v1/chats/", {"name": "x", "members": "everyone"}, format="json")
    assert response.status_code == 400 and "members" in response.json()
    response = api.post("/api/v1/chats/", {"name": "x" * 201}, format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert TeamChat.objects.count() == 1


def test_chat_list_holds_only_my_chats(api_for, chat, alice, carol, other_company):
    TeamChatFactory(company=alice.company, name="Managers only")
    ChatMemberFactory(chat__company=other_company)
    rows = api_for(alice).get("/api/v1/chats/").json()["results"]
    assert [row["id"] for row in rows] == [chat.pk]
    assert api_for(carol).get("/api/v1/chats/").json()["results"] == []


def test_chat_list_runs_a_constant_number_of_queries(
    api_for, company, alice, django_assert_num_queries
):
    api = api_for(alice)

    def add_chats(n):
        for _ in range(n):
            chat = TeamChatFactory(company=company)
            ChatMemberFactory(chat=chat, user=alice)
            ChatMemberFactory.create_batch(2, chat=chat)

    add_chats(1)
    with django_assert_num_queries(2):  # the chats, then their members
        assert len(api.get("/api/v1/chats/").json()["results"]) == 1
    add_chats(49)
    with django_assert_num_queries(2):
        assert len(api.get("/api/v1/chats/?page_size=50").json()["results"]) == 50


def test_chat_detail_shows_what_a_delete_removes(api_for, chat, alice, bob, carol, mallory):
    message = ChatMessageFactory(chat=chat, author=alice)
    ReactionFactory(message=message, user=bob)
    response = api_for(alice).get(f"/api/v1/chats/{chat.pk}/")
    assert response.status_code == 200
    assert response.json()["counts"] == {"members": 2, "messages": 1, "reactions": 1}
    assert api_for(carol).get(f"/api/v1/chats/{chat.pk}/").status_code == 403
    assert api_for(mallory).get(f"/api/v1/chats/{chat.pk}/").status_code == 404


def test_leave_api(api_for, chat, alice, bob, carol):
    assert api_for(carol).post(f"/api/v1/chats/{chat.pk}/leave/").status_code == 403
    assert api_for(bob).post(f"/api/v1/chats/{chat.pk}/leave/").status_code == 204
    assert api_for(bob).get(f"/api/v1/chats/{chat.pk}/").status_code == 403
    assert api_for(bob).post(f"/api/v1/chats/{chat.pk}/leave/").status_code == 403
    assert list(chat.members.all()) == [alice]


# ---------------------------------------------------------------- API: delete + idempotency


def _delete(api, chat_id, key=None):
    headers = {IDEMPOTENCY_HEADER: key} if key is not None else {}
    return api.delete(f"/api/v1/chats/{chat_id}/", headers=headers)


def test_delete_needs_an_idempotency_key(api_for, chat, alice):
    response = _delete(api_for(alice), chat.pk)
    assert response.status_code == 400
    assert IDEMPOTENCY_HEADER in response.json()
    assert _delete(api_for(alice), chat.pk, key="   ").status_code == 400
    assert _delete(api_for(alice), chat.pk, key="k" * 256).status_code == 400
    assert TeamChat.objects.filter(pk=chat.pk).exists()


def test_delete_by_a_non_member_is_403_and_another_companys_chat_404(
    api_for, chat, carol, mallory, published, commit
):
    with commit():
        assert _delete(api_for(carol), chat.pk, key="k1").status_code == 403
        assert _delete(api_for(mallory), chat.pk, key="k1").status_code == 404
        assert _delete(api_for(mallory), chat.pk).status_code == 404  # 404 before the key
        assert _delete(api_for(carol), 987654321, key="k2").status_code == 404
    assert TeamChat.objects.filter(pk=chat.pk).exists()
    assert published == []


def test_a_repeated_delete_returns_the_same_answer_and_does_nothing_more(
    api_for, chat, alice, bob, published, commit
):
    other = TeamChatFactory(company=chat.company)
    ChatMemberFactory(chat=other, user=alice)
    api = api_for(alice)

    with commit():
        first = _delete(api, chat.pk, key="delete-1")
    with commit(), CaptureQueriesContext(connection) as queries:
        second = _delete(api, chat.pk, key="delete-1")

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"id": chat.pk, "deleted_by": alice.pk}
    assert second["Idempotent-Replayed"] == "true"
    assert not [q for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert _events(published, "chat.deleted") == [
        ({"id": chat.pk, "deleted_by": alice.pk}, {alice.pk, bob.pk})
    ]
    # The key belongs to that request: reused for another one, it is refused.
    response = _delete(api, other.pk, key="delete-1")
    assert response.status_code == 422 and IDEMPOTENCY_HEADER in response.json()
    assert TeamChat.objects.filter(pk=other.pk).exists()
    # Keys are per user: bob's same key is his own first request (the chat is gone).
    assert _delete(api_for(bob), chat.pk, key="delete-1").status_code == 404


def test_a_failed_delete_is_not_replayed(api_for, chat, alice, carol):
    assert _delete(api_for(carol), chat.pk, key="retry-me").status_code == 403
    ChatMemberFactory(chat=chat, user=carol)  # now she may
    assert _delete(api_for(carol), chat.pk, key="retry-me").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_delete_once(company, published):
    alice = UserFactory(company=company)
    bob = UserFactory(company=company)
    chat = TeamChatFactory(company=company)
    ChatMemberFactory(chat=chat, user=alice)
    ChatMemberFactory(chat=chat, user=bob)
    barrier = threading.Barrier(8)
    results = []

    def attempt():
        try:
            api = APIClient()
            api.force_authenticate(alice)
            barrier.wait()
            response = _delete(api, chat.pk, key="same-key")
            results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [(200, {"id": chat.pk, "deleted_by": alice.pk})] * 8
    assert _events(published, "chat.deleted") == [
        ({"id": chat.pk, "deleted_by": alice.pk}, {alice.pk, bob.pk})
    ]
    assert not TeamChat.objects.filter(pk=chat.pk).exists()


# ---------------------------------------------------------------- API: messages and reactions


def _messages_url(chat, *parts):
    return "/".join([f"/api/v1/chats/{chat.pk}/messages", *map(str, parts)]) + "/"


def test_send_and_list_messages(api_for, chat, alice, carol, mallory, published, commit):
    api = api_for(alice)
    with commit():
        response = api.post(_messages_url(chat), {"body": "Who takes Mrs. Smith?"}, format="json")
    assert response.status_code == 201
    sent = response.json()
    assert sent["body"] == "Who takes Mrs. Smith?" and sent["reactions"] == []
    [(event, _users)] = _events(published, "chat.message.created")
    assert event == sent

    response = api.post(_messages_url(chat), {"body": "  "}, format="json")
    assert response.status_code == 400 and "body" in response.json()
    response = api.post(_messages_url(chat), {"body": "x" * 10_001}, format="json")
    assert response.status_code == 400 and "body" in response.json()
    assert api_for(carol).post(_messages_url(chat), {"body": "hi"}).status_code == 403
    assert api_for(carol).get(_messages_url(chat)).status_code == 403
    assert api_for(mallory).post(_messages_url(chat), {"body": "hi"}).status_code == 404
    assert api_for(mallory).get(_messages_url(chat)).status_code == 404

    api.post(_messages_url(chat), {"body": "second"}, format="json")
    rows = api.get(_messages_url(chat)).json()["results"]
    assert [row["body"] for row in rows] == ["second", "Who takes Mrs. Smith?"]  # newest first


def test_message_list_runs_a_constant_number_of_queries(
    api_for, chat, alice, bob, django_assert_num_queries
):
    api = api_for(alice)

    def add(n):
        for i in range(n):
            message = ChatMessageFactory(chat=chat, author=alice if i % 2 else bob)
            ReactionFactory(message=message, user=alice)
            ReactionFactory(message=message, user=bob, emoji="🎉")

    add(1)
    # the chat (with membership), the messages with authors, their reactions with users
    with django_assert_num_queries(3):
        assert len(api.get(_messages_url(chat)).json()["results"]) == 1
    add(49)
    with django_assert_num_queries(3):
        assert len(api.get(_messages_url(chat) + "?page_size=50").json()["results"]) == 50


def test_edit_message_api(api_for, chat, alice, bob, mallory, published, commit):
    message = ChatMessageFactory(chat=chat, author=alice, body="first")
    ReactionFactory(message=message, user=bob, emoji="👍")
    url = _messages_url(chat, message.pk)

    assert api_for(bob).patch(url, {"body": "mine now"}, format="json").status_code == 403
    assert api_for(mallory).patch(url, {"body": "x"}, format="json").status_code == 404
    response = api_for(alice).patch(url, {"body": ""}, format="json")
    assert response.status_code == 400 and "body" in response.json()

    with commit():
        response = api_for(alice).patch(url, {"body": "second"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["body"] == "second" and body["edited_at"]
    assert body["reactions"] == [
        {"emoji": "👍", "count": 1, "user_ids": [bob.pk], "names": ["Bob"]}
    ]
    [(event, users)] = _events(published, "chat.message.edited")
    assert event == body and users == {alice.pk, bob.pk}
    other_chat = ChatMemberFactory(chat__company=chat.company, user=alice).chat
    wrong_chat = _messages_url(other_chat, message.pk)  # the message is not in that chat
    assert api_for(alice).patch(wrong_chat, {"body": "x"}, format="json").status_code == 404


def test_reactions_api(api_for, chat, alice, bob, carol, published, commit):
    message = ChatMessageFactory(chat=chat, author=bob)
    url = _messages_url(chat, message.pk, "reactions")
    api = api_for(alice)

    with commit():
        first = api.post(url, {"emoji": "🎉"}, format="json")
        again = api.post(url, {"emoji": "🎉"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert first.json()["reactions"] == [
        {"emoji": "🎉", "count": 1, "user_ids": [alice.pk], "names": ["Alice"]}
    ]
    assert len(_events(published, "reaction.added")) == 1
    assert api.post(url, {"emoji": ""}, format="json").status_code == 400
    assert api_for(carol).post(url, {"emoji": "🎉"}, format="json").status_code == 403

    with commit():
        response = api.delete(f"{url}{quote('🎉')}/")
    assert response.status_code == 200 and response.json()["reactions"] == []
    assert not Reaction.objects.exists()
    [(data, users)] = _events(published, "reaction.removed")
    assert data["emoji"] == "🎉" and users == {alice.pk, bob.pk}
    assert api.delete(f"{url}{quote('🎉')}/").status_code == 200  # already gone: no change
    assert len(_events(published, "reaction.removed")) == 1


def test_the_api_is_documented(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert "/api/v1/chats/{chat_pk}/messages/{id}/reactions/{emoji}/" in paths
    parameters = paths["/api/v1/chats/{id}/"]["delete"]["parameters"]
    assert any(p["name"] == IDEMPOTENCY_HEADER and p["in"] == "header" for p in parameters)


# ---------------------------------------------------------------- pages


def test_chat_list_page_follows_the_dom_contract(client, chat, alice, carol, mallory):
    client.force_login(alice)
    content = client.get(reverse("chats")).content.decode()
    assert '<ul id="chat-list"' in content
    item = content[content.index(f'<li data-chat-id="{chat.pk}"') :]
    item = item[: item.index("</li>")]
    assert f'href="{reverse("chat_detail", args=[chat.pk])}"' in item
    assert "js/chats.js" in content
    # The new chat form offers the company's people (not the user, not another company's).
    assert f'name="members" value="{carol.pk}"' in content
    assert f'value="{alice.pk}"' not in content and f'value="{mallory.pk}"' not in content


def test_chat_page_follows_the_dom_contract(client, chat, alice, bob):
    mine = ChatMessageFactory(chat=chat, author=alice, body="plain")
    edited = ChatMessageFactory(chat=chat, author=bob, body="fixed typo")
    services.edit_chat_message(bob, edited, "fixed the typo")
    client.force_login(alice)
    content = client.get(reverse("chat_detail", args=[chat.pk])).content.decode()
    assert '<ol id="chat-messages"' in content
    assert '<button type="button" class="btn btn-danger" data-action="delete-chat">' in content
    assert 'data-action="leave-chat"' in content

    def item(message):
        start = content.index(f'<li data-message-id="{message.pk}"')
        return content[start : content.index("</li>", start)]

    assert "edited" not in item(mine) and 'data-action="edit-message"' in item(mine)
    assert "edited" in item(edited) and 'data-action="edit-message"' not in item(edited)


# ---------------------------------------------------------------- live, in two browsers


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_chat_is_live_for_both_members(daphne_server, browser, company):  # noqa: F811
    from playwright.sync_api import expect

    from .live import log_in, wait_live

    alice = UserFactory(company=company, username="alice", first_name="Alice")
    bob = UserFactory(company=company, username="bob", first_name="Bob")
    carol = UserFactory(company=company, username="carol", first_name="Carol")
    page_a = log_in(browser, daphne_server, alice)
    page_b = log_in(browser, daphne_server, bob)
    for page in (page_a, page_b):
        page.goto(daphne_server.url + "/chats/")
        wait_live(page)
    page_b.evaluate("window.__noReload = true")

    # Alice creates a chat with Bob: it appears in Bob's list.
    page_a.click("#new-chat summary")
    page_a.fill("#new-chat-name", "Night shift")
    page_a.check(f'#new-chat-form input[name="members"][value="{bob.pk}"]')
    page_a.check(f'#new-chat-form input[name="members"][value="{carol.pk}"]')
    page_a.click('#new-chat-form button[type="submit"]')
    page_a.wait_for_url("**/chats/*/")
    chat = TeamChat.objects.get(name="Night shift")
    expect(page_b.locator(f'#chat-list li[data-chat-id="{chat.pk}"]')).to_contain_text(
        "Night shift"
    )
    assert page_b.evaluate("window.__noReload === true")

    page_b.click(f'#chat-list li[data-chat-id="{chat.pk}"] a')
    page_b.wait_for_url(f"**/chats/{chat.pk}/")
    for page in (page_a, page_b):
        wait_live(page)
        page.evaluate("window.__noReload = true")

    # Alice writes; Bob reads it. Bob reacts; Alice sees it.
    page_a.fill("#chat-send textarea", "Who takes Mrs. Smith?")
    page_a.keyboard.press("Enter")
    expect(page_a.locator("#chat-messages li[data-message-id]")).to_have_count(1)
    message = ChatMessage.objects.get(chat=chat)
    in_b = page_b.locator(f'#chat-messages li[data-message-id="{message.pk}"]')
    in_a = page_a.locator(f'#chat-messages li[data-message-id="{message.pk}"]')
    expect(in_b).to_contain_text("Who takes Mrs. Smith?")
    expect(page_a.locator("#chat-send textarea")).to_have_value("")
    in_b.hover()
    in_b.locator('.reaction-picker [data-emoji="👍"]').click()
    expect(in_a.locator('[data-role="reactions"]')).to_contain_text("👍 1")

    # Alice edits: Bob sees the new text, "edited", and his reaction still there.
    in_a.locator('[data-action="edit-message"]').click()
    in_a.locator("textarea").fill("Who takes Mr. Smith?")
    in_a.locator('button[type="submit"]').click()
    expect(in_b.locator('[data-role="body"]')).to_have_text("Who takes Mr. Smith?")
    expect(in_b).to_contain_text("edited")
    expect(in_b.locator('[data-role="reactions"]')).to_contain_text("👍 1")

    # Bob takes his reaction back by clicking it.
    in_b.locator('[data-role="reactions"] [data-emoji="👍"]').click()
    expect(in_a.locator('[data-role="reactions"] button')).to_have_count(0)

    # Bob leaves: Alice's page shows two members; Bob is back on the list without the chat.
    page_b.on("dialog", lambda dialog: dialog.accept())
    page_b.click('button[data-action="leave-chat"]')
    page_b.wait_for_url(lambda url: url.rstrip("/").endswith("/chats"))
    expect(page_b.locator(f'#chat-list li[data-chat-id="{chat.pk}"]')).to_have_count(0)
    expect(page_a.locator("#chat-members")).to_contain_text("2 members: Alice, Carol")
    assert page_a.evaluate("window.__noReload === true")

    # Alice deletes the chat while Carol is reading it: Carol is told, then taken to the list.
    page_c = log_in(browser, daphne_server, carol)
    page_c.goto(f"{daphne_server.url}/chats/{chat.pk}/")
    wait_live(page_c)
    questions = []
    page_a.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page_a.click('button[data-action="delete-chat"]')
    expect(page_c.locator("#chat-gone")).to_be_visible()
    expect(page_c.locator("#chat-gone")).to_contain_text("This chat was deleted")
    page_c.wait_for_url(lambda url: url.rstrip("/").endswith("/chats"))
    page_a.wait_for_url(lambda url: url.rstrip("/").endswith("/chats"))
    assert "2 members" in questions[0] and "1 message" in questions[0]  # what goes with it
    assert not TeamChat.objects.filter(pk=chat.pk).exists()
