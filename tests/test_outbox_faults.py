"""Sends under faults, with real processes: a Celery worker (prefork, two children) delivers a
backlog through the real WhatsApp Cloud channel to the Graph API's far end (tests.far_end, an
HTTP server in this process) while it is killed with SIGKILL, stopped with SIGTERM, loses its
PostgreSQL connections or its Redis; the outbox's sweeper (run as beat would) brings everything
to an end. And API clients retry across a daphne restart.

Counted at the far end: every message ends `sent` and arrived exactly once, or `failed` with a
reason (only the send in flight at the kill may, and it arrived at most once); none stays
`queued`; none arrived twice.
"""

import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.celery import app as celery_app
from messaging.models import Message
from messaging.sending import UNKNOWN_REASON

from .conftest import eager_tasks
from .factories import ConversationFactory
from .live import *  # noqa: F403  (the daphne_server fixture)
from .processes import RedisServer, Worker, database_url

BACKLOG = 60


class Rig:
    """A private Redis (broker, records, locks), a private queue, the Graph API's far end and a
    backlog of queued messages whose tasks are gone (committed while no worker ran): what each
    fault test starts from. `worker()` starts a real worker; `sweep()` does what beat does."""

    def __init__(self, graph_fake, log_dir, size=BACKLOG, accept_delay=0.05):
        self.redis = RedisServer()
        self.redis.start()
        self.redis_url = f"redis://127.0.0.1:{self.redis.port}/0"
        self.queue = f"outbox-faults-{uuid.uuid4().hex[:8]}"
        self.far_end = graph_fake
        self.log_dir = log_dir
        self.workers: list[Worker] = []
        graph_fake.clear()
        graph_fake.accept_delay = accept_delay  # accepted, not yet answered: kills land there
        conversation = ConversationFactory(client__phone="+4915133333333")
        self.ids = [
            Message.objects.create(
                conversation=conversation,
                direction="out",
                status="queued",
                body=f"backlog {n}",
                next_attempt_at=None,
            ).pk
            for n in range(size)
        ]
        Message.objects.filter(pk__in=self.ids).update(
            created_at=timezone.now() - timedelta(minutes=1)
        )

    def worker(self, name: str, **env) -> Worker:
        worker = Worker(
            name,
            self.queue,
            self.log_dir,
            pool="prefork",
            env={
                "REDIS_URL": self.redis_url,
                "CELERY_BROKER_URL": self.redis_url,
                "WHATSAPP_GRAPH_URL": self.far_end.url,
                "OUTBOX_REQUEUE_SECONDS": "2",
                "SEND_CLAIM_STALE_SECONDS": "4",
                **env,
            },
        )
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def sweep(self) -> None:
        """What beat does every OUTBOX_SWEEP_SECONDS, delivered to the workers' queue."""
        try:
            with celery_app.connection_for_write(self.redis_url) as connection:
                celery_app.send_task(
                    "messaging.tasks.sweep_outbox",
                    queue=self.queue,
                    connection=connection,
                    expires=30,
                )
        except Exception:  # Redis is being restarted: beat would just try again
            pass

    def until_received(self, count: int, worker: Worker) -> None:
        deadline = time.monotonic() + 60
        while len(self.far_end.sent) < count:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.02)

    def until_none_queued(self, worker: Worker, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        queued = Message.objects.filter(pk__in=self.ids, status="queued")
        while queued.exists():
            assert time.monotonic() < deadline, (
                f"still queued: {queued.count()}\n{worker.log()[-3000:]}"
            )
            self.sweep()
            time.sleep(1.0)

    def outcomes(self):
        """(sent, failed): message bodies by outcome; asserts that none stayed queued, each
        sent one arrived exactly once, none arrived twice, and every failure says why."""
        arrived = Counter(m.body for m in self.far_end.sent)
        rows = {m.body: m for m in Message.objects.filter(pk__in=self.ids)}
        sent = [body for body, m in rows.items() if m.status == "sent"]
        failed = [body for body, m in rows.items() if m.status == "failed"]
        assert len(sent) + len(failed) == len(self.ids)  # none left queued
        assert all(arrived[body] == 1 for body in sent), arrived
        assert not arrived or max(arrived.values()) == 1  # nothing arrived twice
        assert all(rows[body].error == UNKNOWN_REASON for body in failed)
        return sent, failed

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.redis.stop()
        self.far_end.accept_delay = 0.0


@pytest.fixture
def rig(graph_fake, tmp_path):
    rig = Rig(graph_fake, tmp_path)
    yield rig
    rig.close()


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_kill_9_and_a_redis_restart_lose_nothing_and_double_nothing(rig):
    first = rig.worker("first")
    rig.sweep()
    rig.until_received(BACKLOG // 3, first)
    first.kill()  # SIGKILL to the whole group: main process and both children
    at_kill = len(rig.far_end.sent)
    assert at_kill < BACKLOG, "killed too late to prove anything"
    # Redis restarts (it keeps nothing on disk: every queued task is gone with it).
    rig.redis.stop()
    time.sleep(0.5)
    rig.redis.start()
    second = rig.worker("second")
    rig.until_none_queued(second)

    sent, failed = rig.outcomes()
    print(f"faults: at_kill={at_kill} sent={len(sent)} failed={failed}")
    # Only sends in flight at the kill (two children) may end failed.
    assert len(failed) <= 2, failed
    assert "Traceback" not in second.log(), second.log()


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_postgres_connections_lost_mid_delivery_lose_nothing_and_double_nothing(rig):
    """PostgreSQL drops the worker's connections again and again while it delivers (as a
    failover or a restart does): claims, records and outcomes that fail are retried, and the
    sweeper finishes the rest."""
    name = f"outbox-worker-{uuid.uuid4().hex[:8]}"
    worker = rig.worker("pg", DATABASE_URL=f"{database_url()}?application_name={name}")
    rig.sweep()
    rig.until_received(5, worker)
    terminated = 0
    until = time.monotonic() + 3.0  # for three seconds, every connection it opens is cut
    with connection.cursor() as cursor:
        while time.monotonic() < until:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [name],
            )
            terminated += cursor.fetchone()[0]
            time.sleep(0.05)
    rig.until_none_queued(worker)

    sent, failed = rig.outcomes()
    print(f"pg loss: terminated={terminated} sent={len(sent)} failed={failed}")
    assert terminated > 0, "no connection was cut: the test proved nothing"
    # A connection cut between the far end's answer and our record is settled from the
    # record later; nothing in this fault is an interrupted send.
    assert failed == [], failed


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_a_warm_shutdown_finishes_the_sends_in_flight(rig):
    """SIGTERM to the worker's main process (systemd's KillMode=mixed): the children finish the
    sends they run and record them, so nothing is left claimed, nothing fails."""
    rig.far_end.accept_delay = 0.2  # a stop is likely to find sends in flight
    first = rig.worker("first")
    rig.sweep()
    rig.until_received(6, first)
    assert first.terminate() == 0, first.log()
    in_flight = Message.objects.filter(pk__in=rig.ids, status="queued").exclude(
        send_claimed_at=None
    )
    assert not in_flight.exists(), "a stopped worker left claimed sends behind"
    second = rig.worker("second")
    rig.until_none_queued(second)

    sent, failed = rig.outcomes()
    assert failed == [] and len(sent) == BACKLOG


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_redis_killed_while_a_worker_delivers_loses_nothing_and_doubles_nothing(rig):
    """Redis (broker, records, locks) dies under a delivering worker and comes back empty: the
    worker reconnects, the sweeper re-queues what the restart lost, and each message goes out
    once."""
    worker = rig.worker("redis")
    rig.sweep()
    rig.until_received(BACKLOG // 4, worker)
    rig.redis.stop()  # SIGKILL: everything queued in Redis is gone
    time.sleep(2.0)
    rig.redis.start()
    rig.until_none_queued(worker)

    sent, failed = rig.outcomes()
    print(f"redis killed: sent={len(sent)} failed={failed}")
    # The worker survives the outage, and a send in flight then still records its outcome
    # in PostgreSQL (only its Redis record is lost): nothing is unknown.
    assert failed == [], failed
    assert worker.process.poll() is None, worker.log()


@pytest.mark.timeout(240)
def test_clients_retrying_across_a_daphne_restart_send_each_message_once(
    daphne_server,  # noqa: F405
    far_end,
):
    """API clients send with an Idempotency-Key and retry on any error with the same key; daphne
    restarts in the middle (SIGTERM cuts the requests in flight). Each message is stored and
    delivered exactly once."""
    import threading

    import httpx

    from accounts.models import ApiToken

    from .factories import UserFactory

    conversation = ConversationFactory(client__phone="+4915133333333")
    agent = UserFactory(company=conversation.company)
    _token, raw = ApiToken.issue(agent, "retrying client")
    url = f"{daphne_server.url}/api/v1/conversations/{conversation.pk}/messages/"
    per_client, clients = 15, 4
    answers, errors = Counter(), Counter()
    progress = threading.Semaphore(0)

    def client(n):
        with httpx.Client(timeout=5.0) as http:
            for i in range(per_client):
                body, key = f"client {n} message {i}", f"key-{n}-{i}"
                for _attempt in range(200):
                    try:
                        response = http.post(
                            url,
                            json={"body": body},
                            headers={"Authorization": f"Bearer {raw}", "Idempotency-Key": key},
                        )
                    except httpx.HTTPError as exc:
                        errors[type(exc).__name__] += 1
                        time.sleep(0.1)
                        continue
                    if response.status_code == 201:
                        answers[response.headers.get("Idempotent-Replayed", "first")] += 1
                        break
                    errors[response.status_code] += 1
                    time.sleep(0.1)
                progress.release()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for _ in range(per_client * clients // 3):
        progress.acquire(timeout=60)
    daphne_server.stop()  # SIGTERM: requests in flight are cut
    daphne_server.start()
    for thread in threads:
        thread.join(timeout=120)

    rows = Message.objects.filter(conversation=conversation)
    bodies = Counter(rows.values_list("body", flat=True))
    print(f"daphne restart: answers={dict(answers)} errors={dict(errors)}")
    assert len(bodies) == per_client * clients and max(bodies.values()) == 1
    assert sum(answers.values()) == per_client * clients
    assert 500 not in errors

    # The daphne here has no worker (its broker is in memory): deliver like the sweeper would.
    rows.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    with eager_tasks():
        from messaging.tasks import sweep_outbox

        sweep_outbox()
    arrived = Counter(m.body for m in far_end.sent)
    assert set(arrived) == set(bodies) and max(arrived.values()) == 1
