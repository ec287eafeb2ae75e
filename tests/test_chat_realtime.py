"""Team chat events over the real /ws/ endpoint (Redis, crm.asgi.application): every member
hears each change of their chat; a colleague outside the chat and another company never do.

As in test_realtime.py, everything runs in one event loop (async_to_sync); the services run
through sync_to_async in the test's thread, inside their own transactions, and publish on
commit."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.exceptions import PermissionDenied
from rest_framework.test import APIClient

from accounts.models import ApiToken
from crm.asgi import application
from messaging import services
from messaging.api.chats import IDEMPOTENCY_HEADER

from .factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.3  # seconds of silence that count as "received nothing"


@pytest.fixture
def people(company, other_company):
    """alice and bob chat; carol is their colleague outside the chat; mallory is elsewhere."""
    return {
        "alice": UserFactory(company=company, username="alice"),
        "bob": UserFactory(company=company, username="bob"),
        "carol": UserFactory(company=company, username="carol"),
        "mallory": UserFactory(company=other_company, username="mallory"),
    }


async def _connect_all(people):
    sockets = {}
    for name, user in people.items():
        token = await sync_to_async(lambda u=user: ApiToken.issue(u, "ws")[1])()
        communicator = WebsocketCommunicator(application, f"/ws/?token={token}")
        connected, _ = await communicator.connect(timeout=5)
        assert connected, name
        welcome = await communicator.receive_json_from(timeout=5)
        assert welcome == {"event": "welcome", "data": {"user_id": user.pk}}
        sockets[name] = communicator
    return sockets


async def _expect(sockets, names, event):
    """Each of `names` receives `event` next; returns their data (all identical)."""
    received = []
    for name in names:
        message = await sockets[name].receive_json_from(timeout=5)
        assert message["event"] == event, (name, message)
        received.append(message["data"])
    assert all(data == received[0] for data in received)
    return received[0]


async def _silent(sockets, names):
    for name in names:
        assert await sockets[name].receive_nothing(timeout=QUIET), f"{name} heard something"


async def _close(sockets):
    for communicator in sockets.values():
        await communicator.disconnect()


def test_every_chat_event_reaches_the_members_and_nobody_else(people):
    alice, bob = people["alice"], people["bob"]

    async def run():
        sockets = await _connect_all(people)
        outsiders = ["carol", "mallory"]

        chat = await sync_to_async(services.create_chat)(alice, name="Night", members=[bob.pk])
        data = await _expect(sockets, ["alice", "bob"], "chat.created")
        assert data["id"] == chat.pk and data["member_count"] == 2
        await _silent(sockets, outsiders)

        message = await sync_to_async(services.send_chat_message)(bob, chat, "Who takes it?")
        data = await _expect(sockets, ["alice", "bob"], "chat.message.created")
        assert data["id"] == message.pk and data["body"] == "Who takes it?"

        await sync_to_async(services.add_reaction)(alice, message, "👍")
        data = await _expect(sockets, ["alice", "bob"], "reaction.added")
        assert data["emoji"] == "👍" and data["user_id"] == alice.pk

        await sync_to_async(services.edit_chat_message)(bob, message, "Who takes Mrs. Smith?")
        data = await _expect(sockets, ["alice", "bob"], "chat.message.edited")
        assert data["body"] == "Who takes Mrs. Smith?" and data["edited_at"]
        assert data["reactions"][0]["user_ids"] == [alice.pk]  # reactions survive the edit

        await sync_to_async(services.remove_reaction)(alice, message, "👍")
        data = await _expect(sockets, ["alice", "bob"], "reaction.removed")
        assert data["reactions"] == []

        await _silent(sockets, ["alice", "bob", *outsiders])
        await _close(sockets)

    async_to_sync(run)()


def test_delete_through_the_api_tells_each_participant_once_with_id_and_deleted_by(people):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]

    def delete(user, chat_id, key):
        api = APIClient()
        api.force_authenticate(user)
        return api.delete(f"/api/v1/chats/{chat_id}/", headers={IDEMPOTENCY_HEADER: key})

    async def run():
        sockets = await _connect_all(people)
        chat = await sync_to_async(services.create_chat)(alice, name="Night", members=[bob.pk])
        await _expect(sockets, ["alice", "bob"], "chat.created")

        response = await sync_to_async(delete)(carol, chat.pk, "k-carol")
        assert response.status_code == 403
        await _silent(sockets, list(people))

        first = await sync_to_async(delete)(bob, chat.pk, "k-bob")
        data = await _expect(sockets, ["alice", "bob"], "chat.deleted")
        assert data == {"id": chat.pk, "deleted_by": bob.pk}
        assert first.json() == data

        again = await sync_to_async(delete)(bob, chat.pk, "k-bob")  # a retry: no second event
        assert (again.status_code, again.json()) == (200, data)
        await _silent(sockets, list(people))
        await _close(sockets)

    async_to_sync(run)()


def test_leaving_tells_the_leaver_and_the_rest_differently(people):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]

    async def run():
        sockets = await _connect_all(people)
        chat = await sync_to_async(services.create_chat)(
            alice, name="Night", members=[bob.pk, carol.pk]
        )
        await _expect(sockets, ["alice", "bob", "carol"], "chat.created")

        await sync_to_async(services.leave_chat)(carol, chat)
        assert await _expect(sockets, ["carol"], "chat.left") == {"id": chat.pk}
        data = await _expect(sockets, ["alice", "bob"], "chat.updated")
        assert data["member_count"] == 2 and {m["id"] for m in data["members"]} == {
            alice.pk,
            bob.pk,
        }

        # Once out, carol hears nothing of the chat, not even its deletion.
        await sync_to_async(services.send_chat_message)(alice, chat, "just us now")
        await _expect(sockets, ["alice", "bob"], "chat.message.created")
        await sync_to_async(services.delete_chat)(alice, chat)
        await _expect(sockets, ["alice", "bob"], "chat.deleted")
        await _silent(sockets, ["carol", "mallory"])
        await _close(sockets)

    async_to_sync(run)()


def test_a_refused_write_publishes_nothing(people):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]

    async def run():
        sockets = await _connect_all(people)
        chat = await sync_to_async(services.create_chat)(alice, name="Night", members=[bob.pk])
        await _expect(sockets, ["alice", "bob"], "chat.created")
        with pytest.raises(PermissionDenied):
            await sync_to_async(services.send_chat_message)(carol, chat, "let me in")
        with pytest.raises(PermissionDenied):
            await sync_to_async(services.delete_chat)(carol, chat)
        await _silent(sockets, list(people))
        await _close(sockets)

    async_to_sync(run)()
