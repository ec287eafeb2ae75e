"""A real Celery worker process is killed (SIGKILL) in the middle of a broadcast, a new one
takes over, and the far end sees exactly one send per recipient: none twice, none skipped.
The one send that may have been in flight at the kill is `unknown` and is never retried.

The only stand-in is the Cloud API's far end (tests.far_end.GraphFake, an HTTP server in this
process): the worker sends over HTTP through the real channel. It records each message *before*
it answers, then waits a little, so a kill usually lands after the far end accepted a message
and before the worker recorded it: the hardest moment for at-most-once.
"""

import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import Role
from channels_integrations.models import Broadcast, BroadcastRecipient
from channels_integrations.whatsapp import broadcasts
from channels_integrations.whatsapp.tasks import dispatch_broadcasts

from .factories import UserFactory, WhatsAppNumberFactory, wrote_today
from .processes import Worker, drop_queue

RECIPIENTS = 30
KILL_AFTER_SENDS = 10


def _worker(name, queue, graph_url, log_dir):
    return Worker(
        name,
        queue,
        log_dir,
        env={
            "WHATSAPP_GRAPH_URL": graph_url,
            "BROADCAST_RATE_PER_MINUTE": "6000",
            "SEND_CLAIM_STALE_SECONDS": "2",
            "BROADCAST_LEASE_SECONDS": "3",
        },
    )


def _cleanup_redis(client, queue):
    for key in client.scan_iter(cache.make_key("broadcast:*"), count=1000):
        client.delete(key)
    drop_queue(client, queue)


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_broadcast_resumes_without_double_or_skipped_sends(tmp_path, graph_fake):
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    queue = f"bcast-resume-{uuid.uuid4().hex[:12]}"
    _cleanup_redis(client, queue)
    graph_fake.clear()
    graph_fake.accept_delay = 0.25

    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    phones = [f"+4915210{n:06d}" for n in range(RECIPIENTS)]
    wrote_today(number, phones)  # the Cloud API's 24-hour window is open for them
    # Scheduled a moment ahead, so nothing is queued from this process: the worker's dispatch
    # (beat's task) starts it.
    broadcast = broadcasts.create_broadcast(
        admin,
        number=number,
        text="Flash sale, today only",
        phones="\n".join(phones),
        scheduled_at=timezone.now() + timedelta(seconds=1),
    )

    def dispatch():  # what beat does every few seconds, delivered to our worker's queue
        dispatch_broadcasts.apply_async(queue=queue, expires=30)

    workers = []
    try:
        first = _worker("first", queue, graph_fake.url, tmp_path)
        workers.append(first)
        first.wait_ready()
        time.sleep(max(0.0, (broadcast.scheduled_at - timezone.now()).total_seconds()) + 0.1)
        dispatch()

        deadline = time.monotonic() + 60
        while len(graph_fake.sent) < KILL_AFTER_SENDS:
            assert time.monotonic() < deadline, f"no progress:\n{first.log()}"
            assert first.process.poll() is None, first.log()
            time.sleep(0.02)
        first.kill()
        sends_at_kill = len(graph_fake.sent)
        assert KILL_AFTER_SENDS <= sends_at_kill < RECIPIENTS, "killed too late to prove a resume"
        broadcast.refresh_from_db()
        assert broadcast.status == "sending"

        second = _worker("second", queue, graph_fake.url, tmp_path)
        workers.append(second)
        second.wait_ready()
        deadline = time.monotonic() + 90
        while True:
            dispatch()
            time.sleep(1.0)
            broadcast.refresh_from_db()
            if broadcast.status == "completed":
                break
            assert time.monotonic() < deadline, (
                f"not completed: {broadcasts.progress(broadcast.pk)}\n{second.log()}"
            )
    finally:
        for worker in workers:
            worker.kill()
        sends = Counter(m.to_address for m in graph_fake.sent)
        graph_fake.clear()
        _cleanup_redis(client, queue)
        client.close()

    rows = dict(
        BroadcastRecipient.objects.filter(broadcast=broadcast).values_list("phone", "status")
    )
    rows = {str(phone): status for phone, status in rows.items()}
    assert sorted(rows) == phones
    sent = [phone for phone, status in rows.items() if status == "sent"]
    unknown = [phone for phone, status in rows.items() if status == "unknown"]

    print(
        f"resume: sends_at_kill={sends_at_kill} sent={len(sent)} unknown={unknown} sends={sum(sends.values())}"
    )
    # None skipped: every recipient was either sent or is the one whose outcome was lost.
    assert len(sent) + len(unknown) == RECIPIENTS, rows
    assert len(unknown) <= 1, unknown
    # None twice: exactly one send per sent recipient; the unknown one at most once (not retried).
    assert all(sends[phone] == 1 for phone in sent), sends
    assert all(sends[phone] <= 1 for phone in unknown), sends
    assert set(sends) <= set(phones) and max(sends.values()) == 1
    assert sum(sends.values()) == len(sent) + sum(sends[phone] for phone in unknown)
    # The second worker really did the rest, cleanly.
    assert sum(sends.values()) > sends_at_kill
    assert "Traceback" not in second.log(), second.log()
    counts = broadcasts.progress(broadcast.pk)
    assert (counts["sent"], counts["unknown"], counts["pending"]) == (len(sent), len(unknown), 0)
    assert Broadcast.objects.get(pk=broadcast.pk).finished_at is not None
