"""Realtime survives a Redis restart: the per-process subscription comes back by itself, tells
every open socket to re-fetch what it may have missed (`resync`), and delivers again.

Runs its own redis-server on a free loopback port so the restart touches nothing else."""

import shutil
import socket
import subprocess
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.models import ApiToken
from crm.asgi import application
from messaging import realtime

from .factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self):
        self.port = _free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def private_redis(settings):
    server = RedisServer()
    server.start()
    settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
    yield server
    server.stop()


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

    from messaging import events

    private_redis.stop()
    with transaction.atomic():
        events.publish("message.created", {"id": 1}, company_id=company.pk)
    assert "realtime: publish failed event=message.created" in caplog.text
    private_redis.start()
