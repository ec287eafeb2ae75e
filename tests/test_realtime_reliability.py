"""Realtime survives a Redis restart: the per-process subscription comes back by itself, tells
every open socket to re-fetch what it may have missed (`resync`), and delivers again.

Runs its own redis-server on a free loopback port so the restart touches nothing else."""

import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.models import ApiToken
from crm.asgi import application
from messaging import realtime

from .factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_redis_restart_resyncs_open_sockets_and_delivery_resumes(private_redis, company):
    user = UserFactory(company=company)
    token = ApiToken.issue(user, "ws")[1]
    publish = sync_to_async(realtime.publish_now)

    async def run():
        communicator = WebsocketCommunicator(application, f"/ws/?token={token}")
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["event"] == "welcome"

        await publish([f"company.{company.pk}"], {"event": "message.created", "data": {"id": 1}})
        assert (await communicator.receive_json_from(timeout=5))["data"] == {"id": 1}

        private_redis.stop()
        await sync_to_async(time.sleep)(0.5)
        private_redis.start()  # same port, empty: like a restarted Redis

        # The hub resubscribes with backoff and asks every socket to re-fetch.
        assert await communicator.receive_json_from(timeout=20) == {"event": "resync", "data": {}}
        await publish([f"company.{company.pk}"], {"event": "message.created", "data": {"id": 2}})
        assert (await communicator.receive_json_from(timeout=5))["data"] == {"id": 2}
        await communicator.disconnect()

    async_to_sync(run)()


def test_publishing_while_redis_is_down_does_not_fail_the_write(private_redis, company, caplog):
    from django.db import transaction

    from messaging import events, realtime

    private_redis.stop()
    with transaction.atomic():  # the write commits; its event goes to the publisher thread
        events.publish("message.created", {"id": 1}, company_id=company.pk)
    assert realtime.flush(10)
    assert "realtime: publish failed (1 events)" in caplog.text
    private_redis.start()
