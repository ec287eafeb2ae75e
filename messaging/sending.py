"""The one send policy, for every path that sends: inbox replies, bot replies, broadcasts and
the WhatsApp send API.

- **Claim**: a row is taken with a conditional UPDATE (pending, unclaimed, due) that counts the
  attempt; the claim is committed before the channel is called, so a second task, a broker
  redelivery or the sweeper finds it taken and does nothing.
- **Record**: after the far end accepted, the channel's id is kept in Redis under the send's
  namespaced key ("message:12", "broadcast-recipient:34"), before our row is updated. A send
  whose row update was lost (the worker died, PostgreSQL was away) is settled from the record
  and never sent again; connection holders (WhatsApp sessions, Telegram listeners) write and
  check the same record.
- **Retry**: transient refusals (network, rate limits, a holder not connected) release the claim
  with a due time (the channel's `retry_after`, else exponential backoff with jitter); after
  SEND_MAX_ATTEMPTS the send fails with the last reason.
- **Unknown**: a channel that broke in a way it did not describe, or a claim that went stale
  with no record, may or may not have reached the client: never re-sent automatically, ended
  with a reason that says so (an agent can retry it).
"""

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from crm import coordination

from . import channels
from .channels import OutboundMessage, SendError

logger = logging.getLogger(__name__)

RECORD_TTL_SECONDS = 7 * 24 * 3600
UNKNOWN_REASON = (
    "The send was interrupted before its outcome was recorded; it may or may not have "
    "arrived, so it was not sent again automatically."
)
UNEXPECTED_REASON = (
    "The channel reported an unexpected error; the message may or may not have arrived, so "
    "it was not sent again automatically."
)


def max_attempts() -> int:
    return max(1, int(settings.SEND_MAX_ATTEMPTS))


def claim_stale_after() -> timedelta:
    return timedelta(seconds=float(settings.SEND_CLAIM_STALE_SECONDS))


def backoff(attempt: int, cap: float = 300.0) -> float:
    """Seconds before attempt `attempt + 1`: 2, 4, 8 ... up to `cap`, with jitter."""
    return min(cap, 2.0**attempt) * (0.5 + random.random())  # noqa: S311 (jitter, not crypto)


# ---------------------------------------------------------------- the record of what was sent


def _record_key(key: str) -> str:
    return coordination.key(f"sent:{key}")


def sent_record(key: str) -> str | None:
    """The channel's id of the send `key` if it was sent, else None (also when Redis is down:
    the claim still keeps a second run away)."""
    try:
        value = coordination.redis_client().get(_record_key(key))
    except Exception:
        logger.warning("send: record of %s unreadable (Redis down?)", key)
        return None
    return value.decode() if value else None


def record_sent(key: str, external_id: str) -> None:
    """Remember that `key` went out as `external_id` (best effort: with Redis down, our row's
    update, right after, is what remembers it)."""
    try:
        coordination.redis_client().set(_record_key(key), external_id, ex=RECORD_TTL_SECONDS)
    except Exception:
        logger.warning("send: could not record %s as sent (Redis down?)", key)


def once(key: str, send) -> str:
    """One part of a send that takes several calls (a file after a file): `send()` (returning a
    SendReceipt) runs unless the part's record says it went out; its id is recorded, so a
    retried send never repeats the parts that already went out. `key` extends the send's key
    ("message:12/part-1")."""
    if external_id := sent_record(key):
        return external_id
    receipt = send()
    record_sent(key, receipt.external_id)
    return receipt.external_id


def part_key(key: str, index: int) -> str:
    return f"{key}/part-{index}"


def send_parts(key: str, parts, quoted: str = "") -> str:
    """A message that goes out as several calls (the text, then each file): each part
    (a callable taking the id to quote, returning a SendReceipt) once, under
    `part_key(key, n)`; the first quotes `quoted`. The message's id is the first part's."""
    ids = [
        once(
            part_key(key, index), lambda part=part, index=index: part(quoted if index == 0 else "")
        )
        for index, part in enumerate(parts)
    ]
    return ids[0]


# ---------------------------------------------------------------- one attempt


@dataclass(frozen=True)
class Outcome:
    kind: str  # "sent", "retry", "failed", "unknown"
    reason: str = ""
    external_id: str = ""
    retry_in: float | None = None  # for "retry": seconds until the next attempt


def attempt(message: OutboundMessage, attempt_number: int) -> Outcome:
    """Send `message` once unless its record says it went out; classify what happened.
    `attempt_number` counts this attempt (1 for the first)."""
    if external_id := sent_record(message.key):
        logger.info("send: %s already sent; settled from its record", message.key)
        return Outcome("sent", external_id=external_id)
    try:
        receipt = channels.get(message.platform).send(message)
    except SendError as exc:
        if exc.connection:
            _connection_failed(message, exc.reason)
        if exc.transient and attempt_number < max_attempts():
            retry_in = exc.retry_after if exc.retry_after is not None else backoff(attempt_number)
            return Outcome("retry", reason=f"Retrying: {exc.reason}", retry_in=retry_in)
        if exc.transient:
            return Outcome(
                "failed", reason=f"Gave up after {attempt_number} attempts: {exc.reason}"
            )
        return Outcome("failed", reason=exc.reason)
    except Exception:
        logger.exception("send: %s channel error on %s", message.key, message.platform)
        return Outcome("unknown", reason=UNEXPECTED_REASON)
    record_sent(message.key, receipt.external_id)
    from notifications import services as notifications  # notifications imports messaging

    notifications.connection_healthy(send_connection_key(message))
    return Outcome("sent", external_id=receipt.external_id)


def send_connection_key(message: OutboundMessage) -> str:
    """The connection a send goes through (a number, a mailbox's SMTP, a page): what its
    failures are told about, once per episode."""
    return f"{message.platform}:send:{message.source_id}"


def _connection_failed(message: OutboundMessage, reason: str) -> None:
    from notifications import services as notifications

    def name() -> str:
        model = channels.get(message.platform).source_model
        source = model.objects.filter(pk=message.source_id).first() if model else None
        return str(source) if source is not None else message.platform

    notifications.notify_connection_failed(
        message.company_id, send_connection_key(message), name, reason
    )


# ---------------------------------------------------------------- claims on a table of sends


@dataclass(frozen=True)
class Outbox:
    """A table whose rows are sends: which rows are pending, and the columns of the claim.

    `namespace` prefixes the rows' send keys; `due_field` (optional) holds when a pending row
    may next be tried."""

    model: type
    namespace: str
    pending: dict = field(default_factory=dict)
    claim_field: str = "claimed_at"
    attempts_field: str = "send_attempts"
    due_field: str | None = None

    def key(self, pk: int) -> str:
        return f"{self.namespace}:{pk}"

    def claim(self, pk: int) -> datetime | None:
        """Take the row for one attempt; the claim time, or None if it is not ours to send."""
        now = timezone.now()
        rows = self.model.objects.filter(pk=pk, **self.pending, **{self.claim_field: None})
        if self.due_field:
            rows = rows.filter(
                Q(**{f"{self.due_field}__isnull": True}) | Q(**{f"{self.due_field}__lte": now})
            )
        claimed = rows.update(
            **{self.claim_field: now, self.attempts_field: F(self.attempts_field) + 1}
        )
        return now if claimed else None

    def mine(self, pk: int, claim: datetime):
        """The row while our claim holds (and it is still pending)."""
        return self.model.objects.filter(pk=pk, **self.pending, **{self.claim_field: claim})

    def release(self, pk: int, claim: datetime, retry_in: float, **fields) -> bool:
        """Give the row back for a later attempt in `retry_in` seconds."""
        if self.due_field:
            fields[self.due_field] = timezone.now() + timedelta(seconds=retry_in)
        return bool(self.mine(pk, claim).update(**{self.claim_field: None}, **fields))

    def stale_claims(self):
        """Pending rows claimed longer ago than SEND_CLAIM_STALE_SECONDS (their worker died)."""
        cutoff = timezone.now() - claim_stale_after()
        return self.model.objects.filter(**self.pending, **{f"{self.claim_field}__lt": cutoff})

    def settle_stale(self, sent, unknown, **filters) -> tuple[int, int]:
        """Each stale claim (of the rows `filters` select): `sent(pk, claim, external_id)` when
        its record says it went out, else `unknown(pk, claim)`. Returns (sent, unknown)."""
        settled = [0, 0]
        rows = self.stale_claims().filter(**filters).values_list("pk", self.claim_field)[:1000]
        for pk, claim in rows:
            external_id = sent_record(self.key(pk))
            if external_id:
                settled[0] += bool(sent(pk, claim, external_id))
            else:
                settled[1] += bool(unknown(pk, claim))
        if any(settled):
            logger.warning(
                "send: stale %s claims settled: %d sent (from records), %d unknown",
                self.namespace,
                *settled,
            )
        return settled[0], settled[1]
