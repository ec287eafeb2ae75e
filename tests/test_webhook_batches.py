"""The webhook inbox at Meta's pace: workers ingest whole batches (every status change of a
batch in one statement, messages through the one idempotent door, no savepoints), with exactly
the outcome delivery-by-delivery ingestion gives; a batch holding a bad delivery is replayed one
by one, so the bad one is recorded with its reason and only its own conversation waits behind
it; the fast path in front of Django stores concurrent requests with one commit and answers
each 200 only once that commit is done (WhatsApp Cloud, Messenger and Instagram alike); a worker
killed with SIGKILL in the middle of a batch ingests nothing twice.

Everything is real (PostgreSQL, uvicorn, a Celery worker, Redis); failures come from
PostgreSQL triggers and locks."""

import gc
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels_integrations.whatsapp import cloud
from crm.celery import app as celery_app
from messaging.models import Conversation, Message, MessageReaction
from messaging.services import record_delivery_status
from webhook_inbox.models import Delivery

from .factories import (
    ConversationFactory,
    InstagramAccountFactory,
    MessageFactory,
    MessengerPageFactory,
    WhatsAppNumberFactory,
)
from .inbox import drain
from .processes import RedisServer, Worker, advisory_locks, database_url, free_port, wait_for
from .test_whatsapp_cloud import PHONE_NUMBER_ID, _inbound_payload, _text, _webhook_url

pytestmark = pytest.mark.django_db

APP_SECRET = "app-secret-value"
BASE_DIR = Path(__file__).resolve().parent.parent
CLIENT = "4915112345678"  # _text's sender
OTHER = "4915187654321"


@pytest.fixture
def number(company):
    return WhatsAppNumberFactory(
        company=company,
        provider="cloud",
        cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token="token",
        cloud_app_secret=APP_SECRET,
    )


def _sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _post(client, number, payload):
    """Stored in the inbox, not drained (the batch is drained by the test)."""
    raw = json.dumps(payload).encode()
    response = client.post(
        _webhook_url(number), raw, content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=_sign(raw),
    )  # fmt: skip
    assert response.status_code == 200, response.content


def _status(wamid, name, recipient=CLIENT, **extra):
    return {"id": wamid, "status": name, "timestamp": "1763900100", "recipient_id": recipient,
            **extra}  # fmt: skip


def _from(sender, wamid, body):
    return {**_text(wamid=wamid, body=body), "from": sender}


def _reaction(target, emoji="👍"):
    return {"from": CLIENT, "id": f"wamid.r.{target}", "timestamp": "1763900050",
            "type": "reaction", "reaction": {"message_id": target, "emoji": emoji}}  # fmt: skip


FAILURE = {"errors": [{"code": 131047, "title": "Re-engagement message"}]}


def test_a_batch_ends_exactly_as_delivery_by_delivery_would(client, number):
    """Every pair of statuses, in every order, from every status an outbound message can be
    in: the batch (one locked read, one UPDATE) leaves each message exactly as applying them
    one by one does (forward only; 'failed' only from queued or sent; the error and the times
    of each step). A status for a message we do not know (yet) changes nothing and fails
    nothing; a reaction lands on a message an earlier delivery of the same batch stored."""
    conversation = ConversationFactory(
        company=number.company, source=number, external_thread_id=CLIENT
    )
    statuses = ["sent", "delivered", "read", "failed"]
    starts = ["queued", "sent", "failed", "delivered", "read"]
    cases = [
        (start, sequence) for start in starts for sequence in itertools.product(statuses, repeat=2)
    ]
    batch_ids, single_ids, changes = [], [], []
    for n, (start, sequence) in enumerate(cases):
        for ids, prefix in ((batch_ids, "b"), (single_ids, "s")):
            ids.append(
                MessageFactory(
                    conversation=conversation, direction="out", status=start,
                    external_id=f"wamid.{prefix}.{n}",
                ).pk
            )  # fmt: skip
        for status in sequence:
            extra = FAILURE if status == "failed" else {}
            changes.append(_status(f"wamid.b.{n}", status, **extra))
            error = cloud.REASONS[131047] if extra else ""
            record_delivery_status(single_ids[-1], status, error=error)
    # The same changes through the inbox: 4 to a delivery, with a message, a reaction on it in
    # a later delivery, and a status nobody knows yet.
    changes.insert(7, _status("wamid.not.yet.known", "read"))
    deliveries = [changes[i : i + 4] for i in range(0, len(changes), 4)]
    _post(client, number, _inbound_payload(_text(wamid="wamid.in.first"), statuses=deliveries[0]))
    _post(client, number, _inbound_payload(_reaction("wamid.in.first"), statuses=deliveries[1]))
    for part in deliveries[2:]:
        _post(client, number, _inbound_payload(statuses=part))
    assert Delivery.objects.count() == len(deliveries) < 200  # one batch

    counts = drain()
    assert counts["deliveries"] == len(deliveries) and not counts.get("failed")
    assert counts["stored"] == 1 and counts["reactions"] == 1
    assert MessageReaction.objects.get().message.external_id == "wamid.in.first"
    assert not Delivery.objects.exists()

    def outcome(ids):
        rows = Message.objects.filter(pk__in=ids).order_by("pk")
        return [
            (m.status, m.error, m.sent_at is not None, m.delivered_at is not None,
             m.read_at is not None)
            for m in rows
        ]  # fmt: skip

    assert outcome(batch_ids) == outcome(single_ids)
    # Read after failed: the statuses that are ahead win, the failure's reason goes.
    failed_then_read = cases.index(("sent", ("failed", "read")))
    assert outcome(batch_ids)[failed_then_read][:2] == ("read", "")
    read_then_failed = cases.index(("sent", ("read", "failed")))
    assert outcome(batch_ids)[read_then_failed][0] == "read"
    sent_then_failed = cases.index(("queued", ("sent", "failed")))
    assert outcome(batch_ids)[sent_then_failed][:2] == ("failed", cloud.REASONS[131047])


REFUSE_POISON = """
CREATE OR REPLACE FUNCTION test_refuse_poison() RETURNS trigger AS $$
BEGIN
  IF NEW.body LIKE '%poison%' THEN RAISE EXCEPTION 'disk says no to %', NEW.external_id; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_refuse_poison BEFORE INSERT ON messaging_message
  FOR EACH ROW EXECUTE FUNCTION test_refuse_poison();
"""


def test_a_poisoned_delivery_inside_a_batch_holds_back_only_its_conversation(
    client, number, settings
):
    settings.WEBHOOK_INBOX_RETRY_SECONDS = 60
    conversation = ConversationFactory(
        company=number.company, source=number, external_thread_id=CLIENT
    )
    ours = MessageFactory(
        conversation=conversation, direction="out", status="sent", external_id="wamid.out.1"
    )
    with connection.cursor() as cursor:
        cursor.execute(REFUSE_POISON)
    _post(client, number, _inbound_payload(_from(CLIENT, "wamid.a", "First, fine")))
    _post(client, number, _inbound_payload(_from(OTHER, "wamid.poison", "poison pill")))
    _post(client, number, _inbound_payload(_from(CLIENT, "wamid.b", "Second, fine")))
    _post(client, number, _inbound_payload(_from(OTHER, "wamid.c", "After the poison")))
    _post(client, number, _inbound_payload(statuses=[_status("wamid.out.1", "read")]))

    counts = drain()
    assert counts["failed"] == 1 and counts["stored"] == 2 and counts["statuses"] == 1
    # The other conversation's messages and the status went through; the bad one is kept with
    # its reason, and the one behind it in its own conversation waits (order).
    assert set(Message.objects.filter(direction="in").values_list("external_id", flat=True)) == {
        "wamid.a",
        "wamid.b",
    }
    ours.refresh_from_db()
    assert ours.status == "read"
    poisoned = Delivery.objects.order_by("id").first()
    assert "disk says no to wamid.poison" in poisoned.last_error and poisoned.attempts == 1
    assert poisoned.retry_at is not None and poisoned.parked_at is None
    assert Delivery.objects.count() == 2

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_poison ON messaging_message")
    assert drain() == {"held": 1}  # its retry is not due yet: it and the one behind it wait
    Delivery.objects.update(retry_at=timezone.now() - timedelta(seconds=1))  # a minute later
    assert drain()["stored"] == 2
    other = Message.objects.filter(conversation__external_thread_id=OTHER).order_by("id")
    assert list(other.values_list("external_id", flat=True)) == ["wamid.poison", "wamid.c"]
    assert not Delivery.objects.exists()


def test_a_delivery_that_is_not_json_is_recorded_and_holds_back_what_follows(client, number):
    """A stored body whose conversations cannot be told holds back everything after it."""
    Delivery.objects.create(
        company=number.company, source="whatsapp_cloud", source_id=number.pk, body=b"{not json"
    )
    _post(client, number, _inbound_payload(_from(OTHER, "wamid.after", "After it")))
    counts = drain()
    assert counts["failed"] == 1 and not Message.objects.exists()
    assert "JSONDecodeError" in Delivery.objects.order_by("id").first().last_error


# ---------------------------------------------------------------- the fast path (uvicorn)


class Server:
    """uvicorn with crm.asgi (the fast path in front of Django), as deployed."""

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": "memory://",
            **env,
        }
        self.log = open(tmp_path / "uvicorn.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("uvicorn")), "crm.asgi:application",
             "--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "off"],
            cwd=BASE_DIR, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self._accepts, timeout=60)

    def _accepts(self):
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def post(self, path, raw, signature):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, None

    def stop(self):
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def _meta_payload(page_id, sender, mid):
    return {"object": "page", "entry": [{"id": page_id, "time": 1763900000, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": page_id}, "timestamp": 1763900000000,
        "message": {"mid": mid, "text": "Hello from Meta"}}]}]}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_group_commit_answers_each_request_after_the_commit_and_stores_every_row(company, tmp_path):
    """40 signed deliveries at once to a Cloud number, a Messenger Page and an Instagram
    account of two companies, while the inbox's table is locked: none is answered before its
    row is committed; then each gets 200, every row is stored once with its body, its source
    and its company, and several shared one commit."""
    from .factories import CompanyFactory

    other_company = CompanyFactory()
    number = WhatsAppNumberFactory(
        company=company, provider="cloud", cloud_app_secret="s1",
        cloud_phone_number_id=PHONE_NUMBER_ID,
    )  # fmt: skip
    page = MessengerPageFactory(company=other_company, app_secret="s2")
    insta = InstagramAccountFactory(company=company, app_secret="s3")
    targets = [
        (f"/webhooks/whatsapp/{number.uuid}/", "s1", "whatsapp_cloud", number),
        (f"/webhooks/meta/{page.uuid}/", "s2", "messenger", page),
        (f"/webhooks/meta/{insta.uuid}/", "s3", "instagram", insta),
    ]
    requests = []
    for n in range(40):
        path, secret, source, target = targets[n % 3]
        if source == "whatsapp_cloud":
            payload = _inbound_payload(_from(CLIENT, f"wamid.g{n}", f"Group {n}"))
        else:
            payload = _meta_payload(target.page_id, f"psid-{n}", f"m.g{n}")
        raw = json.dumps(payload).encode()
        requests.append((path, raw, _sign(raw, secret), source, target))

    server = Server(tmp_path, WEBHOOK_FAST_PATH_GROUP_SECONDS="0.002")
    answers = {}
    try:
        # Warm the fast path's caches and connection, so the lock below is what the requests meet.
        for path, _raw, secret in ((t[0], None, t[1]) for t in targets):
            warm = json.dumps({"object": "x", "entry": []}).encode()
            assert server.post(path, warm, _sign(warm, secret)) == (200, {"accepted": True})
        Delivery.objects.all().delete()
        with psycopg.connect(database_url()) as holder:
            holder.execute("LOCK TABLE webhook_inbox_delivery IN ACCESS EXCLUSIVE MODE")

            def send(n, path, raw, signature):
                answers[n] = server.post(path, raw, signature)

            threads = [
                threading.Thread(target=send, args=(n, path, raw, signature))
                for n, (path, raw, signature, _source, _target) in enumerate(requests)
            ]
            for thread in threads:
                thread.start()
            wait_for(
                lambda: holder.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted"
                    " AND relation = 'webhook_inbox_delivery'::regclass"
                ).fetchone()[0],
                timeout=30,
            )
            time.sleep(1.0)  # the rest arrive and wait for their commit
            assert answers == {}  # nothing answered before it is stored
            holder.rollback()
        for thread in threads:
            thread.join(60)
    finally:
        server.stop()
    assert answers == {n: (200, {"accepted": True}) for n in range(len(requests))}
    stored = list(Delivery.objects.values_list("source", "source_id", "company_id", "body"))
    assert sorted((s, i, c, bytes(b)) for s, i, c, b in stored) == sorted(
        (source, target.pk, target.company_id, raw)
        for _path, raw, _signature, source, target in requests
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT xmin::text) FROM webhook_inbox_delivery")
        commits = cursor.fetchone()[0]
    assert commits < len(requests)  # grouped: fewer commits than requests
    assert drain()["stored"] == len(requests)


def _run_fast_path(scenario):
    """`scenario(fast_path)` on a new event loop, the fast path's connections closed after."""
    import asyncio

    from webhook_inbox.asgi import WebhookFastPath

    async def run():
        fast_path = WebhookFastPath(None)
        try:
            return await asyncio.wait_for(scenario(fast_path), 60)
        finally:
            await fast_path.close()

    return asyncio.run(run())


def _stored_rows() -> list[tuple]:
    return [
        (company_id, source, source_id, bytes(body))
        for company_id, source, source_id, body in Delivery.objects.order_by("id").values_list(
            "company_id", "source", "source_id", "body"
        )
    ]


@pytest.mark.django_db(transaction=True)
def test_a_request_cancelled_while_its_group_commits_cancels_no_one_else(company):
    """Three deliveries wait for one group commit; the server cancels one request (shutdown,
    a timeout): the other two are still answered after the commit, and all three rows are
    stored (the cancelled one's sender retries; the idempotent door drops the repeat)."""
    import asyncio

    rows = [(company.pk, "whatsapp_cloud", 7, f"delivery {n}".encode()) for n in range(3)]

    async def scenario(fast_path):
        waiting = [asyncio.ensure_future(fast_path._commit(row)) for row in rows]
        await asyncio.sleep(0)  # all three queued for the same group
        waiting[1].cancel()
        return await asyncio.gather(*waiting, return_exceptions=True)

    answers = _run_fast_path(scenario)
    assert answers[0] is None and answers[2] is None
    assert isinstance(answers[1], asyncio.CancelledError)
    stored = Delivery.objects.order_by("id").values_list("body", flat=True)
    assert [bytes(body) for body in stored] == [body for *_rest, body in rows]


@pytest.mark.django_db(transaction=True)
def test_the_fast_path_serves_on_a_new_event_loop_after_the_first_one_closed(company):
    """The fast path keeps the loop it serves on (asking asyncio for it per request costs a
    system call); a new loop after the first one closed (a test's, a restarted server's) is
    taken up, not a closed one's futures awaited forever."""
    import asyncio

    from webhook_inbox.asgi import WebhookFastPath

    fast_path = WebhookFastPath(None)

    async def store(n):
        try:
            await asyncio.wait_for(
                fast_path._commit((company.pk, "whatsapp_cloud", 7, f"delivery {n}".encode())), 30
            )
        finally:
            await fast_path.close()

    asyncio.run(store(0))
    asyncio.run(store(1))
    stored = Delivery.objects.order_by("id").values_list("body", flat=True)
    assert [bytes(body) for body in stored] == [b"delivery 0", b"delivery 1"]


@pytest.mark.django_db(transaction=True)
def test_deliveries_after_a_quiet_moment_and_during_a_commit_are_all_stored(company):
    """A lane stores group after group and idles when nothing waits. A delivery that arrives
    right after it went idle is sent by it (none waits forever), and those arriving while a
    commit runs go in the next group: five groups for 1 + 1 + (1 then 3) + 1 rows."""
    import asyncio

    from webhook_inbox.asgi import WebhookFastPath

    def row(n):
        return (company.pk, "whatsapp_cloud", 7, f"delivery {n}".encode())

    async def scenario():
        fast_path = WebhookFastPath(None)
        try:
            await fast_path._commit(row(0))
            # Queued in the step right after the first answer: the lane has just gone idle.
            await fast_path._commit(row(1))
            first = asyncio.ensure_future(fast_path._commit(row(2)))
            while not fast_path.in_flight or fast_path.pending:
                await asyncio.sleep(0)  # row 2's INSERT is on its way
            during = [asyncio.ensure_future(fast_path._commit(row(n))) for n in (3, 4, 5)]
            await asyncio.gather(first, *during)
            await asyncio.sleep(0.05)  # a quiet moment
            await fast_path._commit(row(6))
            return fast_path.in_flight
        finally:
            await fast_path.close()

    # Awaited in this task, not wrapped in one: a wrapper's extra loop turn would hide a
    # lane that is still counted as busy after its answer. None is busy at the end.
    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == 0
    stored = Delivery.objects.order_by("id").values_list("body", flat=True)
    assert [bytes(body) for body in stored] == [row(n)[3] for n in range(7)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(convert_from(body, 'UTF8') ORDER BY id) FROM webhook_inbox_delivery"
            " GROUP BY xmin::text ORDER BY min(id)"
        )
        groups = [names for (names,) in cursor.fetchall()]
    assert groups == [
        ["delivery 0"], ["delivery 1"], ["delivery 2"],
        ["delivery 3", "delivery 4", "delivery 5"], ["delivery 6"],
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_group_larger_than_the_socket_buffer_is_stored_whole_in_one_commit(company):
    """Twelve deliveries of 1 MB arrive together: their one INSERT is sent as the connection's
    socket drains (far more than its buffer), and every body is stored byte for byte."""
    import asyncio

    rows = [(company.pk, "whatsapp_cloud", 7, os.urandom(1 << 20)) for _ in range(12)]

    async def scenario(fast_path):
        await asyncio.gather(*(fast_path._commit(row) for row in rows))

    _run_fast_path(scenario)
    assert _stored_rows() == rows
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT xmin::text) FROM webhook_inbox_delivery")
        assert cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_a_group_postgresql_refuses_is_handed_back_and_a_new_connection_takes_the_next(company):
    """PostgreSQL refuses a group's INSERT (a source longer than its column): every request of
    that group, and one queued while it was refused, is handed back (each goes to Django's view,
    which stores or answers it alone); the connection is closed, and the next delivery is
    stored through a new one."""
    import asyncio

    def row(n, source="whatsapp_cloud"):
        return (company.pk, source, 7, f"delivery {n}".encode())

    async def scenario(fast_path):
        await fast_path._commit(row(0))
        [first] = fast_path.idle
        refused = [
            asyncio.ensure_future(fast_path._commit(row(1))),
            asyncio.ensure_future(fast_path._commit(row(2, source="x" * 30))),
        ]
        while not fast_path.in_flight or fast_path.pending:
            await asyncio.sleep(0)  # the refused group's INSERT is on its way
        refused.append(asyncio.ensure_future(fast_path._commit(row(3))))
        answers = await asyncio.gather(*refused, return_exceptions=True)
        await fast_path._commit(row(4))
        [second] = fast_path.idle
        return answers, first.conn.closed, second.conn is first.conn

    answers, first_closed, same = _run_fast_path(scenario)
    assert [type(answer) for answer in answers] == [psycopg.DatabaseError] * 3
    assert "value too long" in str(answers[0])
    assert first_closed and not same
    assert _stored_rows() == [row(0), row(4)]


@pytest.mark.django_db(transaction=True)
def test_requests_that_find_postgresql_unreachable_are_handed_back_and_the_next_ones_retry(
    company, monkeypatch
):
    """No PostgreSQL where the settings point (a port nobody listens on): the requests waiting
    for the new connection are handed back at once (Django's view answers each), and once
    PostgreSQL is reachable again the next request connects and is stored."""
    import asyncio

    rows = [(company.pk, "whatsapp_cloud", 7, f"delivery {n}".encode()) for n in range(3)]
    real_port = connection.settings_dict["PORT"]

    async def scenario(fast_path):
        monkeypatch.setitem(connection.settings_dict, "PORT", str(free_port()))
        refused = await asyncio.gather(
            *(fast_path._commit(row) for row in rows[:2]), return_exceptions=True
        )
        monkeypatch.setitem(connection.settings_dict, "PORT", real_port)
        await fast_path._commit(rows[2])
        return refused

    refused = _run_fast_path(scenario)
    assert [type(answer) for answer in refused] == [psycopg.OperationalError] * 2
    assert _stored_rows() == rows[2:]


@pytest.mark.django_db(transaction=True)
@hypothesis_settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.sampled_from(["whatsapp_cloud", "messenger", "instagram"]),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.binary(max_size=300),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_a_group_is_stored_exactly_as_it_came(rows):
    """The fast path writes PostgreSQL's binary array format itself: any ids, any bytes
    (empty, NUL, not UTF-8), in arrival order, come back from the table as they went in."""
    import asyncio

    Delivery.objects.all().delete()

    async def scenario(fast_path):
        await asyncio.gather(*(fast_path._commit(row) for row in rows))

    _run_fast_path(scenario)
    assert _stored_rows() == rows


@pytest.mark.django_db(transaction=True)
def test_a_bad_signature_through_the_fast_path_is_403_and_stores_nothing(company, tmp_path):
    number = WhatsAppNumberFactory(company=company, provider="cloud", cloud_app_secret="s1")
    page = MessengerPageFactory(company=company, app_secret="s2")
    cloud_raw = json.dumps(_inbound_payload(_text())).encode()
    meta_raw = json.dumps(_meta_payload(page.page_id, "psid-1", "m.1")).encode()
    server = Server(tmp_path)
    try:
        cloud_path, meta_path = f"/webhooks/whatsapp/{number.uuid}/", f"/webhooks/meta/{page.uuid}/"
        assert server.post(cloud_path, cloud_raw, "sha256=" + "0" * 64)[0] == 403
        assert server.post(cloud_path, cloud_raw, _sign(cloud_raw, "s2"))[0] == 403
        assert server.post(meta_path, meta_raw, _sign(meta_raw, "s1"))[0] == 403
        assert server.post(meta_path, meta_raw, "")[0] == 403
        assert not Delivery.objects.exists()
        # The right secrets: stored, each for its own target.
        assert server.post(cloud_path, cloud_raw, _sign(cloud_raw, "s1"))[0] == 200
        assert server.post(meta_path, meta_raw, _sign(meta_raw, "s2"))[0] == 200
    finally:
        server.stop()
    assert sorted(Delivery.objects.values_list("source", "source_id")) == sorted(
        [("whatsapp_cloud", number.pk), ("messenger", page.pk)]
    )


def _fast_path_backends() -> list[int]:
    with psycopg.connect(database_url()) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()", ["switchboard-webhook-fast-path"],
        )]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_fast_path_connection_that_postgresql_dropped_loses_no_delivery(company, tmp_path):
    """The fast path keeps its PostgreSQL connection between groups. PostgreSQL ends it (a
    restart, an administrator): the next delivery is still answered 200 and stored (its group's
    INSERT fails, Django's view stores it), and the one after goes through a new connection."""
    number = WhatsAppNumberFactory(company=company, provider="cloud", cloud_app_secret="s1")
    path = f"/webhooks/whatsapp/{number.uuid}/"
    raws = [
        json.dumps(_inbound_payload(_from(CLIENT, f"wamid.k{n}", f"Kept {n}"))).encode()
        for n in range(3)
    ]
    server = Server(tmp_path)
    try:
        assert server.post(path, raws[0], _sign(raws[0], "s1")) == (200, {"accepted": True})
        [held] = _fast_path_backends()
        with psycopg.connect(database_url()) as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", [held]).fetchone()[0]
        wait_for(lambda: held not in _fast_path_backends(), timeout=10)
        assert server.post(path, raws[1], _sign(raws[1], "s1")) == (200, {"accepted": True})
        assert server.post(path, raws[2], _sign(raws[2], "s1")) == (200, {"accepted": True})
        [new] = _fast_path_backends()
        assert new != held
    finally:
        server.stop()
    stored = Delivery.objects.order_by("id").values_list("body", flat=True)
    assert [bytes(body) for body in stored] == raws
    assert "group INSERT failed" in (tmp_path / "uvicorn.log").read_text()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
deliveries = st.fixed_dictionaries({"entry": st.lists(json_values, max_size=3)}, optional={
    "object": st.text(max_size=10), "extra": json_values,
})  # fmt: skip


def _view_stores(kind: str, body: bytes) -> bool:
    """The Django views' rule (whatsapp/webhooks.py, meta/webhooks.py), with their parser."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return kind == "meta" or (isinstance(payload, dict) and isinstance(payload.get("entry"), list))


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=40)
    | st.sampled_from(
        [
            b"NaN",
            b'{"entry": [Infinity]}',
            b'{"entry": [1e999]}',
            b'{"entry": ["\\ud800"]}',
            b'\xef\xbb\xbf{"entry": []}',
            '{"entry": []}'.encode("utf-16"),
            b'{"entry": [' * 2000,
        ]
    )  # fmt: skip
    | json_values.map(lambda value: json.dumps(value).encode())
    | deliveries.map(lambda value: json.dumps(value, ensure_ascii=False).encode())
)
def test_the_fast_path_takes_only_what_the_view_would_store(body):
    """The fast path parses with orjson, the views with json: whatever the fast path takes,
    the view would have stored; what it does not take goes to the view, which decides."""
    from webhook_inbox.asgi import _is_delivery

    for kind in ("whatsapp", "meta"):
        if _is_delivery(kind, body):
            assert _view_stores(kind, body)


@hypothesis_settings(max_examples=200, deadline=None)
@given(deliveries | json_values)
def test_the_fast_path_takes_every_delivery_meta_sends(value):
    """Valid UTF-8 JSON, as Meta sends it: the fast path decides as the view does (no delivery
    is sent the slow way for nothing)."""
    from webhook_inbox.asgi import _is_delivery

    body = json.dumps(value, ensure_ascii=False).encode()
    for kind in ("whatsapp", "meta"):
        assert _is_delivery(kind, body) == _view_stores(kind, body)


# ---------------------------------------------------------------- kill -9 mid-batch

SLOW_INSERTS = """
CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$
BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_slow_insert BEFORE INSERT ON messaging_message
  FOR EACH ROW EXECUTE FUNCTION test_slow_insert();
"""


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_killed_mid_batch_ingests_nothing_twice(company, tmp_path):
    """A real worker drains a batch of messages and statuses; SIGKILL while it is inside the
    batch; a second worker drains again: every message once, every status once, the unread
    count right, the inbox empty."""
    number = WhatsAppNumberFactory(
        company=company, provider="cloud", cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token="token", cloud_app_secret=APP_SECRET,
    )  # fmt: skip
    conversation = ConversationFactory(company=company, source=number, external_thread_id=CLIENT)
    count = 60
    outbound = [
        MessageFactory(
            conversation=conversation, direction="out", status="sent", external_id=f"wamid.o{n}"
        ).pk
        for n in range(count)
    ]
    Message.objects.filter(pk__in=outbound).update(sent_at=timezone.now() - timedelta(minutes=1))
    for n in range(count):
        Delivery.objects.create(
            company=company, source="whatsapp_cloud", source_id=number.pk,
            body=json.dumps(_inbound_payload(
                _text(wamid=f"wamid.k{n}", body=f"Message {n}"),
                statuses=[_status(f"wamid.o{n}", "delivered")],
            )).encode(),
        )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(SLOW_INSERTS)  # the batch takes > 1 s: time to kill it inside
    redis = RedisServer()
    redis.start()
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    queue = f"inbox-kill-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url, "WEBHOOK_INBOX_BATCH": "200"}

    def drain_now():
        with celery_app.connection_for_write(redis_url) as broker:
            celery_app.send_task("webhook_inbox.tasks.drain_inbox", queue=queue, connection=broker)

    first = second = None
    try:
        first = Worker("drainer-a", queue, tmp_path, env=env, pool="prefork")
        first.wait_ready()
        drain_now()
        wait_for(lambda: advisory_locks(others_only=True), timeout=60)  # inside its batch
        time.sleep(0.4)  # some inserts into the batch
        first.kill()
        # PostgreSQL rolled it back
        wait_for(lambda: not advisory_locks(others_only=True), timeout=30)
        assert Message.objects.filter(direction="in").count() == 0
        assert Delivery.objects.count() == count
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_slow_insert ON messaging_message")
            cursor.execute("DROP FUNCTION test_slow_insert()")
        second = Worker("drainer-b", queue, tmp_path, env=env, pool="prefork")
        second.wait_ready()
        drain_now()
        wait_for(lambda: not Delivery.objects.exists(), timeout=120)
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.kill()
        redis.stop()
    inbound = Message.objects.filter(direction="in")
    assert inbound.count() == count
    assert inbound.values("external_id").distinct().count() == count
    assert Conversation.objects.get(pk=conversation.pk).unread_count == count
    assert Message.objects.filter(pk__in=outbound, status="delivered").count() == count


def test_a_server_process_collects_its_young_objects_at_the_configured_threshold():
    """The web processes (uvicorn and daphne load crm.asgi) keep the requests waiting for a
    group's commit alive: at Python's 700 their young collections took 4.6% of a busy web
    process (crm.settings.SERVER_GC_THRESHOLD)."""
    env = {**os.environ, "SERVER_GC_THRESHOLD": "12345"}
    probe = "import gc, crm.asgi; print(gc.get_threshold()[0])"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["12345"]


def test_a_worker_collects_its_young_objects_at_the_configured_threshold(settings):
    """A webhook batch keeps thousands of objects alive until its commit: at Python's 700
    they set off full collections of the worker's whole heap (crm.settings)."""
    from celery.signals import worker_init

    from crm.celery import _fewer_full_collections

    # Connected to the worker's start (sending the signal here would run Celery's own
    # start-up receivers in the test process too).
    assert _fewer_full_collections in [receiver() for _key, receiver in worker_init.receivers]
    settings.WORKER_GC_THRESHOLD = 12_345
    before = gc.get_threshold()
    try:
        _fewer_full_collections()
        assert gc.get_threshold() == (12_345, *before[1:])
    finally:
        gc.set_threshold(*before)
