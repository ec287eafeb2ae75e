"""Storing a delivery (the webhook view: one INSERT) and draining the inbox (a worker).

Order: deliveries of one source (a WhatsApp number, a Page, an Instagram account) are ingested
in arrival order (their id), by one drainer at a time: a drainer holds the source's
transaction-scoped advisory lock while it works through a batch, and the batch is one
transaction, so a drainer killed mid-batch leaves nothing half-done — the batch is simply
ingested again by the next one (the receive functions are idempotent as well). A batch is
ingested at once by the channel's batch receiver; a batch that fails is replayed delivery by
delivery, and a delivery that fails holds back the later ones of its conversations (order)
until it succeeds or is parked after WEBHOOK_INBOX_MAX_ATTEMPTS; sources are drained side by
side.
"""

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from crm import coordination

from .models import Delivery, Source

logger = logging.getLogger(__name__)

# Per source: a function taking the source's id and returning a receiver (payload -> counts)
# or None when the source is gone or turned off (its deliveries are then dropped).
RECEIVERS = {
    Source.WHATSAPP_CLOUD: "channels_integrations.whatsapp.inbound.cloud_webhook_receiver",
    Source.MESSENGER: "channels_integrations.meta.inbound.messenger_webhook_receiver",
    Source.INSTAGRAM: "channels_integrations.meta.inbound.instagram_webhook_receiver",
}
# The same, ingesting a whole batch of deliveries at once (a list of payloads -> counts).
BATCH_RECEIVERS = {
    Source.WHATSAPP_CLOUD: "channels_integrations.whatsapp.inbound.cloud_webhook_batch_receiver",
    Source.MESSENGER: "channels_integrations.meta.inbound.messenger_webhook_batch_receiver",
    Source.INSTAGRAM: "channels_integrations.meta.inbound.instagram_webhook_batch_receiver",
}
# The same, returning what tells which conversations a delivery touches (a payload -> a set of
# the channel's thread ids): a delivery that fails holds back only later ones of those.
THREADS = {
    Source.WHATSAPP_CLOUD: "channels_integrations.whatsapp.inbound.cloud_delivery_threads",
    Source.MESSENGER: "channels_integrations.meta.inbound.messenger_delivery_threads",
    Source.INSTAGRAM: "channels_integrations.meta.inbound.instagram_delivery_threads",
}
_LOCK_SPACE = {source: n + 1 for n, source in enumerate(Source.values)}
KICK_KEY = "webhook_inbox:kick"
# A busy source's full batches drained in a row before the waiting sources are looked up
# again: that look-up reads the oldest waiting rows (5-7 ms with a large backlog, 11-15% of a
# batch of status webhooks), and another source waits at most this many batches.
BATCHES_PER_TURN = 5


# ---------------------------------------------------------------- the webhook's side


def store(source: str, source_id: int, company_id: int, body: bytes) -> None:
    """Keep one verified delivery as it came, and wake a drainer once it is committed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO webhook_inbox_delivery"
            " (company_id, source, source_id, body, attempts, last_error)"
            " VALUES (%s, %s, %s, %s, 0, '')",
            [company_id, source, source_id, body],
        )
    transaction.on_commit(kick)


def kick() -> None:
    """Queue a drain unless one is queued and not started yet (the drain clears the flag when
    it starts, so nothing stored after that waits). The flag lapses after 10 s, so a queued
    drain lost with its worker holds nothing back for long; beat's periodic drain
    (WEBHOOK_INBOX_SWEEP_SECONDS) picks up anything else, and everything when Redis is down."""
    from .tasks import drain_inbox

    try:
        if coordination.redis_client().set(coordination.key(KICK_KEY), 1, nx=True, ex=10):
            drain_inbox.apply_async()
    except Exception:  # a broker or Redis outage must not fail the webhook: beat drains
        logger.warning("webhook inbox: could not queue a drain; beat's sweep will", exc_info=True)


# ---------------------------------------------------------------- the worker's side


def _waiting_sources(limit: int = 200) -> list[tuple[str, int]]:
    """Sources with deliveries waiting, oldest first (from the oldest waiting rows)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT source, source_id FROM ("
            "  SELECT source, source_id, id FROM webhook_inbox_delivery"
            "  WHERE parked_at IS NULL ORDER BY id LIMIT %s"
            ") AS t GROUP BY source, source_id ORDER BY min(id)",
            [limit * 20],
        )
        return cursor.fetchall()[:limit]


def _backoff(attempts: int) -> timedelta:
    base = float(settings.WEBHOOK_INBOX_RETRY_SECONDS)
    return timedelta(seconds=min(base * 2 ** (attempts - 1), 300.0))


class _OneByOne(Exception):
    """The batch holds a delivery that failed before: replay it delivery by delivery."""


def _take(cursor, source: str, source_id: int) -> bool:
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_SPACE[source], source_id])
    return cursor.fetchone()[0]


def drain_source(source: str, source_id: int, batch: int | None = None) -> Counter | None:
    """Ingest up to `batch` waiting deliveries of one source in order, in one transaction.
    None when another drainer holds this source (it is being drained).

    First the whole batch at once (the channel's batch receiver: every delivery parsed, its
    messages through the idempotent door, every status change of the batch in one statement;
    no savepoints); if that fails — or the batch holds a delivery that failed before — it is
    rolled back and replayed delivery by delivery, each in its own savepoint, so a bad
    delivery is recorded with its reason and every other one is ingested, but for the later
    ones of its conversations (they wait behind it: order)."""
    batch = batch or settings.WEBHOOK_INBOX_BATCH
    try:
        return _drain_batch(source, source_id, batch)
    except _OneByOne:
        pass
    except Exception as exc:  # a bad delivery (or a bad moment): find which, one by one
        logger.warning(
            "webhook inbox: %s=%s batch failed (%s: %s); replaying it delivery by delivery",
            source,
            source_id,
            type(exc).__name__,
            str(exc)[:200],
        )
    return _drain_one_by_one(source, source_id, batch)


def _drain_batch(source: str, source_id: int, batch: int) -> Counter | None:
    totals: Counter = Counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if not _take(cursor, source, source_id):
                return None
            # SKIP LOCKED: rows a replay of a previous batch still holds are not waited for.
            cursor.execute(
                "SELECT id, body, attempts FROM webhook_inbox_delivery"
                " WHERE source = %s AND source_id = %s AND parked_at IS NULL"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                [source, source_id, batch],
            )
            rows = cursor.fetchall()
        if not rows:
            return totals
        if any(attempts for _id, _body, attempts in rows):
            raise _OneByOne  # its retry time, its parking: the one-by-one path decides
        receiver: Callable | None = import_string(BATCH_RECEIVERS[source])(source_id)
        if receiver is None:
            totals["dropped"] = len(rows)
        else:
            counts = receiver([json.loads(bytes(body)) for _id, body, _attempts in rows])
            totals["deliveries"] = len(rows)
            _add(totals, counts)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM webhook_inbox_delivery WHERE id = ANY(%s)",
                [[row_id for row_id, _body, _attempts in rows]],
            )
    _log_dropped(source, source_id, totals)
    return totals


def _add(totals: Counter, counts: dict) -> None:
    for name, value in counts.items():
        if isinstance(value, int) and not isinstance(value, bool):
            totals[name] += value


def _log_dropped(source: str, source_id: int, totals: Counter) -> None:
    if totals["dropped"]:
        logger.info(
            "webhook inbox: %s=%s gone or inactive; %s deliveries dropped",
            source,
            source_id,
            totals["dropped"],
        )


def _drain_one_by_one(source: str, source_id: int, batch: int) -> Counter | None:
    """Each delivery in its own savepoint: one that fails is recorded with its reason and
    retried later, or parked after WEBHOOK_INBOX_MAX_ATTEMPTS. Until then it holds back the
    later deliveries of the conversations it touches (order per conversation); the others go
    through. A delivery whose conversations cannot be told holds back everything after it."""
    totals: Counter = Counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if not _take(cursor, source, source_id):
                return None
        rows = list(
            Delivery.objects.filter(source=source, source_id=source_id, parked_at__isnull=True)
            .order_by("id")
            .only("id", "body", "attempts", "retry_at")[:batch]
        )
        if not rows:
            return totals
        receiver: Callable | None = import_string(RECEIVERS[source])(source_id)
        threads_of = _threads_reader(source, source_id)
        done: list[int] = []
        held: set[str] = set()
        hold_all = False
        now = timezone.now()
        for row in rows:
            if receiver is None:
                done.append(row.pk)
                totals["dropped"] += 1
                continue
            if hold_all or (held and _touches(threads_of(row), held)):
                totals["held"] += 1
                continue  # behind a failed delivery of its conversation: it waits (order)
            if row.retry_at and row.retry_at > now:
                waiting = threads_of(row)  # waiting for its retry: its conversations wait too
                hold_all, held = hold_all or waiting is None, held | (waiting or set())
                continue
            try:
                with transaction.atomic():
                    counts = receiver(json.loads(bytes(row.body)))
            except Exception as exc:
                _failed(row, exc)
                totals["failed"] += 1
                if row.parked_at:
                    totals["parked"] += 1
                    continue
                failed = threads_of(row)
                hold_all, held = hold_all or failed is None, held | (failed or set())
                continue
            done.append(row.pk)
            totals["deliveries"] += 1
            _add(totals, counts)
        if done:
            Delivery.objects.filter(pk__in=done).delete()
    _log_dropped(source, source_id, totals)
    return totals


def _threads_reader(source: str, source_id: int) -> Callable:
    """row -> the set of conversations it touches, or None when that cannot be told."""
    reader = None

    def threads_of(row: Delivery) -> set[str] | None:
        nonlocal reader
        try:
            reader = reader or import_string(THREADS[source])(source_id)
            return set(reader(json.loads(bytes(row.body))))
        except Exception:
            return None

    return threads_of


def _touches(threads: set[str] | None, held: set[str]) -> bool:
    return threads is None or bool(threads & held)


def _failed(row: Delivery, exc: Exception) -> None:
    row.attempts += 1
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if row.attempts >= settings.WEBHOOK_INBOX_MAX_ATTEMPTS:
        row.parked_at, row.retry_at = timezone.now(), None
        logger.error(
            "webhook inbox: delivery=%s parked after %s attempts: %s",
            row.pk,
            row.attempts,
            row.last_error,
        )
    else:
        row.retry_at = timezone.now() + _backoff(row.attempts)
        logger.warning(
            "webhook inbox: delivery=%s failed (attempt %s), retried later: %s",
            row.pk,
            row.attempts,
            row.last_error,
            exc_info=exc,
        )
    row.save(update_fields=["attempts", "last_error", "parked_at", "retry_at"])


def drain(time_budget: float | None = None) -> Counter:
    """Drain every waiting source until nothing is left that can be taken now (or the time
    budget is spent). Returns the summed counts. Tests call this to run the worker's drain
    synchronously."""
    started = time.monotonic()
    totals: Counter = Counter()
    while True:
        progressed = False
        for source, source_id in _waiting_sources():
            for _batch in range(BATCHES_PER_TURN):
                counts = drain_source(source, source_id)
                if counts is None:
                    break
                totals.update(counts)
                moved = counts["deliveries"] + counts["dropped"] + counts["parked"]
                progressed = progressed or bool(moved)
                if time_budget is not None and time.monotonic() - started > time_budget:
                    totals["budget_spent"] = 1
                    return totals
                if moved < settings.WEBHOOK_INBOX_BATCH:
                    break  # drained, or the rest waits (a retry, order behind a failure)
        if not progressed:
            return totals


def retry_parked(ids) -> int:
    """The platform admin's retry: parked deliveries wait again, attempts from zero."""
    return Delivery.objects.filter(pk__in=ids, parked_at__isnull=False).update(
        parked_at=None, retry_at=None, attempts=0
    )


def backlog() -> dict:
    """Waiting and parked deliveries, and the age of the oldest waiting one (seconds)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE parked_at IS NULL),"
            " count(*) FILTER (WHERE parked_at IS NOT NULL),"
            " extract(epoch FROM now() - min(received_at) FILTER (WHERE parked_at IS NULL))"
            " FROM webhook_inbox_delivery"
        )
        waiting, parked, age = cursor.fetchone()
    return {"waiting": waiting, "parked": parked, "oldest_age_seconds": float(age or 0.0)}
