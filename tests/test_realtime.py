"""The /ws/ endpoint on the real Redis channel layer: who gets in, and who hears what."""

import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from accounts.models import ApiToken
from crm.asgi import application
from messaging import events

from .factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(path="/ws/", headers=None):
    """Connect; a refused socket is accepted and then closed, so report its close code."""
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=5)
    if connected:
        first = await communicator.receive_output(timeout=5)
        if first["type"] == "websocket.close":
            return communicator, False, first["code"]
        communicator.output_queue.put_nowait(first)  # the welcome, for the caller to read
    return communicator, connected, None


def test_unauthenticated_connection_is_closed_with_4401():
    async def run():
        communicator, connected, code = await _connect()
        assert not connected and code == 4401
        communicator, connected, code = await _connect("/ws/?token=sb_wrong")
        assert not connected and code == 4401

    async_to_sync(run)()


def test_foreign_origin_is_refused_and_own_origin_accepted(client, company):
    user = UserFactory(company=company)
    client.force_login(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    async def run():
        communicator = WebsocketCommunicator(
            application, "/ws/", headers=[cookie, (b"origin", b"https://evil.example")]
        )
        connected, _ = await communicator.connect(timeout=5)
        assert not connected
        _, connected, _ = await _connect(headers=[cookie, (b"origin", b"http://localhost")])
        assert connected

    async_to_sync(run)()


def test_session_cookie_connects_and_gets_welcome_and_pong(client, company):
    user = UserFactory(company=company)
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def run():
        communicator, connected, _ = await _connect(headers=[(b"cookie", cookie)])
        assert connected
        assert await communicator.receive_json_from(timeout=5) == {
            "event": "welcome",
            "data": {"user_id": user.pk},
        }
        await communicator.send_json_to({"event": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"event": "pong"}
        await communicator.disconnect()

    async_to_sync(run)()


def _publish_in_transaction(*calls, rollback=False):
    """Publish events inside a transaction, as services do (run from the test's event loop)."""

    @sync_to_async
    def run():
        try:
            with transaction.atomic():
                for event, data, kwargs in calls:
                    events.publish(event, data, **kwargs)
                if rollback:
                    raise RuntimeError("rolled back")
        except RuntimeError:
            pass

    return run()


def test_events_reach_only_the_company_and_user_they_are_for(company, other_company):
    alice = UserFactory(company=company)
    bob = UserFactory(company=company)
    mallory = UserFactory(company=other_company)
    tokens = {user.pk: ApiToken.issue(user, "ws")[1] for user in (alice, bob, mallory)}

    async def run():
        sockets = {}
        for user in (alice, bob, mallory):
            communicator, connected, _ = await _connect(f"/ws/?token={tokens[user.pk]}")
            assert connected
            await communicator.receive_json_from(timeout=5)  # welcome
            sockets[user.pk] = communicator

        await _publish_in_transaction(
            ("conversation.updated", {"id": 1}, {"company_id": company.pk}),
            ("chat.created", {"id": 7}, {"user_ids": [bob.pk]}),
        )

        updated = {"event": "conversation.updated", "data": {"id": 1}}
        assert await sockets[alice.pk].receive_json_from(timeout=5) == updated
        assert await sockets[bob.pk].receive_json_from(timeout=5) == updated
        assert await sockets[bob.pk].receive_json_from(timeout=5) == {
            "event": "chat.created",
            "data": {"id": 7},
        }
        assert await sockets[alice.pk].receive_nothing(timeout=0.3)
        assert await sockets[mallory.pk].receive_nothing(timeout=0.3)
        for communicator in sockets.values():
            await communicator.disconnect()

    async_to_sync(run)()


def test_what_a_person_wrote_arrives_as_written_whichever_encoder_carried_it(company):
    """Events travel to Redis encoded by orjson, or by json when orjson refuses (a key that
    is not a string): both arrive at the socket as json would have written them."""
    user = UserFactory(company=company)
    token = ApiToken.issue(user, "ws")[1]
    written = 'Привіт, «Ёлка» — 👋 \u2028 "quoted" \\ end'

    async def run():
        communicator, connected, _ = await _connect(f"/ws/?token={token}")
        assert connected
        await communicator.receive_json_from(timeout=5)  # welcome
        await _publish_in_transaction(
            ("message.created", {"id": 1, "body": written}, {"company_id": company.pk}),
            ("message.created", {"id": 2, 42: written}, {"company_id": company.pk}),
        )
        first = await communicator.receive_json_from(timeout=5)
        second = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return first, second

    first, second = async_to_sync(run)()
    assert first == {"event": "message.created", "data": {"id": 1, "body": written}}
    assert second == {"event": "message.created", "data": {"id": 2, "42": written}}


def test_an_event_of_a_rolled_back_transaction_is_never_sent(company):
    user = UserFactory(company=company)
    token = ApiToken.issue(user, "ws")[1]

    async def run():
        communicator, connected, _ = await _connect(f"/ws/?token={token}")
        await communicator.receive_json_from(timeout=5)
        await _publish_in_transaction(
            ("message.created", {"id": 1}, {"company_id": company.pk}), rollback=True
        )
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    async_to_sync(run)()


def test_a_burst_of_events_shares_redis_messages_and_arrives_whole_and_in_order(company, settings):
    """Under load the publisher sends what waits in one Redis message (at most one per
    COALESCE_SECONDS); every socket still gets every event, in the order of the commits."""
    import redis

    from messaging import realtime

    user = UserFactory(company=company)
    token = ApiToken.issue(user, "ws")[1]
    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(settings.REALTIME_CHANNEL)

    def burst():
        for number in range(40):  # autocommit: each publish is its own commit
            events.publish("message.created", {"id": number}, company_id=company.pk)
        assert realtime.flush(10)

    async def run():
        communicator, connected, _ = await _connect(f"/ws/?token={token}")
        assert connected
        await communicator.receive_json_from(timeout=5)  # welcome
        await sync_to_async(burst)()
        received = [await communicator.receive_json_from(timeout=5) for _ in range(40)]
        assert [event["data"]["id"] for event in received] == list(range(40))
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()

    async_to_sync(run)()
    redis_messages, deadline = [], time.monotonic() + 1
    while time.monotonic() < deadline:
        if message := listener.get_message(timeout=0.1):
            redis_messages.append(realtime.decode(message["data"]))
    listener.close()
    burst_events = [
        event
        for batch in redis_messages
        for event in batch
        if event["payload"]["event"] == "message.created"  # not the socket's presence.changed
    ]
    assert [event["payload"]["data"]["id"] for event in burst_events] == list(range(40))
    assert len(redis_messages) < 10
