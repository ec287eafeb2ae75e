"""Exactly one live WhatsApp connection per number across real worker processes.

Two real Celery workers (threads pool, as the `connections` queue runs) are both asked to
start the same number: one connects, the other finds the lease held. The holder is killed
(SIGKILL): the supervisor hands the number to the surviving worker within two periods. The
survivor gets SIGTERM: it closes the session and releases the lease before it exits.

The only stand-in is the adapter (tests.whatsapp_fakes.FakeWebAdapter, "connect" mode):
WhatsApp's servers are unreachable here. Each worker records its live connections in a
Redis set, so the test sees every connection that is open anywhere.
"""

import time
import uuid

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from channels_integrations.models import WhatsAppSession
from channels_integrations.whatsapp import lease as lease_module
from channels_integrations.whatsapp import sessions, tasks

from .factories import WhatsAppNumberFactory
from .processes import Worker, drop_queue

LEASE_SECONDS = 3.0
SUPERVISOR_PERIOD = 3.0  # as beat would run it; here the test calls supervise() itself


def _holder_pid(number_id):
    token = lease_module.number_holder(number_id)
    return int(token.split(":")[1]) if token else None


def _live(client, key):
    return {member.decode() for member in client.smembers(key)}


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_one_connection_across_workers_takeover_after_kill_and_clean_sigterm(tmp_path, monkeypatch):
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = f"wa-connections-{uuid.uuid4().hex[:10]}"
    live_key = cache.make_key(f"fake-whatsapp-live:{queue}")
    number = WhatsAppNumberFactory(provider="web")
    WhatsAppSession.objects.create(number=number, status=WhatsAppSession.Status.STARTING)
    # The supervisor in this process starts sessions on the workers' private queue.
    monkeypatch.setattr(
        tasks.run_whatsapp_session,
        "delay",
        lambda number_id: tasks.run_whatsapp_session.apply_async([number_id], queue=queue),
    )
    env = {
        "WHATSAPP_WEB_ADAPTER": "tests.whatsapp_fakes.FakeWebAdapter",
        "FAKE_WHATSAPP_MODE": "connect",
        "FAKE_WHATSAPP_LIVE_KEY": live_key,
        "CONNECTION_LEASE_SECONDS": str(LEASE_SECONDS),
        "CONNECTION_HEARTBEAT_SECONDS": "0.5",
    }
    workers = [Worker(name, queue, tmp_path, env=env, pool="threads") for name in ("a", "b")]
    try:
        for worker in workers:
            worker.wait_ready()
        by_pid = {worker.pid: worker for worker in workers}

        # Both are asked to start it (a double-queued start, two supervisors): one session.
        for _ in range(2):
            tasks.run_whatsapp_session.apply_async([number.pk], queue=queue)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _live(client, live_key):
            time.sleep(0.1)
        for _ in range(20):  # watched for two seconds: never a second connection
            assert len(_live(client, live_key)) == 1
            time.sleep(0.1)
        holder_pid = _holder_pid(number.pk)
        assert holder_pid in by_pid
        assert "is held by another worker; not starting" in "".join(w.log() for w in workers)
        session = WhatsAppSession.objects.get(number=number)
        assert session.status == WhatsAppSession.Status.CONNECTED

        # The holder dies without a word; the lease lapses; the supervisor moves the number.
        by_pid[holder_pid].kill()
        survivor = next(worker for pid, worker in by_pid.items() if pid != holder_pid)
        periods = 0
        while periods < 2 and _holder_pid(number.pk) != survivor.pid:
            time.sleep(SUPERVISOR_PERIOD)
            periods += 1
            sessions.supervise()
            deadline = time.monotonic() + SUPERVISOR_PERIOD
            while time.monotonic() < deadline and _holder_pid(number.pk) != survivor.pid:
                time.sleep(0.1)
        assert _holder_pid(number.pk) == survivor.pid, survivor.log()

        def live_now():  # the killed worker could not take its entry out
            return {m for m in _live(client, live_key) if not m.startswith(f"{holder_pid}:")}

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not live_now():
            time.sleep(0.1)
        assert live_now() == {f"{survivor.pid}:{number.pk}"}

        # SIGTERM (systemd's stop): the session closes and the lease goes before the exit.
        assert survivor.terminate(timeout=60) == 0, survivor.log()
        assert lease_module.number_holder(number.pk) is None
        assert f"{survivor.pid}:{number.pk}" not in _live(client, live_key)
        assert "session ended (shutdown)" in survivor.log()
    finally:
        for worker in workers:
            worker.kill()
        client.delete(live_key)
        drop_queue(client, queue)
        client.close()
