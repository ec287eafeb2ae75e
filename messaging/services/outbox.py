"""Outbound messages as an outbox: the committed `queued` row is the truth.

`send_message` (inbox.py) commits the row and queues `deliver_message` after commit; if the
broker is down then, the row waits for the sweeper. `deliver_message` claims the row and runs
the one send policy (`messaging.sending`). `sweep_outbox` (beat) re-queues due rows no task
took (a lost task: worker killed, broker restarted) and settles claims that went stale.
"""

import copy
import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.celery import task
from notifications import services as notifications

from .. import channels, events, sending
from ..channels import OutboundMessage, TemplatePart
from ..models import Message
from ..payloads import message_payload
from ..sending import Outbox, Outcome
from ..signals import outbound_message_sent
from .attachments import outbound_files

logger = logging.getLogger(__name__)

DELIVER_TASK = "messaging.tasks.deliver_message"
COUNTDOWN_LIMIT = 60.0  # longer waits are left to the sweeper (no long ETAs in the broker)

MESSAGES = Outbox(
    Message,
    namespace="message",
    pending={"status": Message.Status.QUEUED, "direction": Message.Direction.OUTBOUND},
    claim_field="send_claimed_at",
    due_field="next_attempt_at",
)


class OutcomeNotRecorded(Exception):
    """PostgreSQL went away before the outcome of a claimed message was written: `outcome` (what
    the channel answered) is settled later against `claim`, without calling the channel again."""

    def __init__(self, message_id: int, claim, outcome: Outcome):
        super().__init__(f"message={message_id}: {outcome.kind} not recorded")
        self.message_id = message_id
        self.claim = claim
        self.outcome = outcome


DATABASE_ERRORS = (OperationalError, InterfaceError)  # PostgreSQL away, not a bad row


def enqueue_delivery(message_id: int, *, countdown: float | None = None, settle=None) -> bool:
    """Queue the delivery task; False when the broker is unreachable (the sweeper re-queues
    the row later, so this never fails a request whose row is committed)."""
    kwargs = {"settle": settle} if settle else {}
    try:
        task(DELIVER_TASK).apply_async((message_id,), kwargs, countdown=countdown)
    except Exception:
        logger.warning(
            "outbound: message=%s not queued (broker down?); the sweeper will",
            message_id,
            exc_info=True,
        )
        return False
    return True


def outbound_for(message: Message) -> OutboundMessage:
    """The typed outbound message of one of our queued messages, built by its channel."""
    conversation = message.conversation
    channel = channels.get(conversation.platform)
    source = conversation.source
    return OutboundMessage(
        key=MESSAGES.key(message.pk),
        platform=conversation.platform,
        company_id=conversation.company_id,
        source_id=source.pk,
        to_address=channel.client_address(conversation),
        body=message.body,
        route=channel.route(source, conversation=conversation, message=message),
        subject=message.metadata.get("subject") or conversation.subject,
        quoted=message.metadata.get("quoted", ""),
        template=(
            TemplatePart.from_metadata(message.metadata["template"], rendered=message.body)
            if message.metadata.get("template")
            else None
        ),
        files=outbound_files(message),
        auto_submitted=bool(message.metadata.get("auto_submitted")),
    )


def _load(message_id: int) -> Message | None:
    return Message.objects.select_related("conversation__client").filter(pk=message_id).first()


def deliver_message(message_id: int) -> Outcome | None:
    """Claim one queued message and send it by the send policy; None if it was not ours.

    Everything the send needs is read before the claim, so the claim is followed at once by
    the channel's call: a worker killed in between leaves as few "may or may not have
    arrived" sends as possible."""
    message = _load(message_id)
    if message is None or message.status != Message.Status.QUEUED or message.send_claimed_at:
        logger.info("send: message=%s already claimed or not queued", message_id)
        return None
    conversation = message.conversation
    source = conversation.source
    if source is None or not channels.live(source):
        outbound, outcome = None, Outcome("failed", reason=DEACTIVATED)
    else:
        outbound, outcome = outbound_for(message), None
    claim = MESSAGES.claim(message_id)
    if claim is None:
        logger.info("send: message=%s already claimed, not due or not queued", message_id)
        return None
    if outbound is not None:
        outcome = sending.attempt(outbound, message.send_attempts + 1)
    try:
        settle_message(message_id, claim, outcome)
    except DATABASE_ERRORS as exc:
        raise OutcomeNotRecorded(message_id, claim, outcome) from exc
    return outcome


DEACTIVATED = "This conversation's channel was deactivated before it went out."


def settle_message(message_id: int, claim, outcome: Outcome) -> None:
    """Write what an attempt came to onto the message (and publish it)."""
    if outcome.kind == "retry":
        if not MESSAGES.release(message_id, claim, outcome.retry_in, error=outcome.reason[:2000]):
            return  # no longer our claim (settled meanwhile): nothing to retry
        logger.warning(
            "send: message=%s transient failure, retry in %.0fs", message_id, outcome.retry_in
        )
        if outcome.retry_in <= COUNTDOWN_LIMIT:
            transaction.on_commit(
                lambda: enqueue_delivery(message_id, countdown=outcome.retry_in), robust=True
            )
        _publish(message_id)
        return
    if outcome.kind == "sent":
        _record_sent(message_id, outcome.external_id)
        return
    logger.warning("send: message=%s %s: %s", message_id, outcome.kind, outcome.reason)
    record_delivery_status(message_id, Message.Status.FAILED, error=outcome.reason)


def _record_sent(message_id: int, external_id: str) -> bool:
    if not record_delivery_status(message_id, Message.Status.SENT, external_id=external_id):
        return False
    message = Message.objects.select_related("conversation").get(pk=message_id)
    outbound_message_sent.send(
        sender=Message,
        message_id=message_id,
        conversation_id=message.conversation_id,
        platform=message.conversation.platform,
        source_id=message.conversation.source.pk,
        external_id=external_id,
    )
    logger.info("send: message=%s sent on %s", message_id, message.conversation.platform)
    return True


def _publish(message_id: int) -> None:
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is not None:
        events.publish(
            "message.updated", message_payload(message), conversation=message.conversation
        )


STATUS_RANK = {
    Message.Status.QUEUED: 0,
    Message.Status.FAILED: 1,
    Message.Status.SENT: 2,
    Message.Status.DELIVERED: 3,
    Message.Status.READ: 4,
}
STATUS_TIME_FIELD = {
    Message.Status.SENT: "sent_at",
    Message.Status.DELIVERED: "delivered_at",
    Message.Status.READ: "read_at",
}


def record_delivery_status(
    message_id: int, status: str, *, external_id: str | None = None, error: str = ""
) -> bool:
    """Move an outbound message's status forward (a late 'sent' never overwrites 'read') and
    publish the change. Used by the send task and by channels' status webhooks."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))  # lock the message, not its thread
            .annotate(
                company_id=F("conversation__company_id"),
                assignee_id=F("conversation__assignee_id"),
            )
            .filter(pk=message_id)
            .first()
        )
        if message is None or message.direction != Message.Direction.OUTBOUND:
            return False
        if not _moves_forward(message.status, status):
            return False
        message.status = status
        message.error = error[:2000]
        fields = ["status", "error"]
        if external_id:
            message.external_id = external_id
            fields.append("external_id")
        if status in STATUS_TIME_FIELD:
            setattr(message, STATUS_TIME_FIELD[status], timezone.now())
            fields.append(STATUS_TIME_FIELD[status])
        message.save(update_fields=fields)
        # message carries its conversation's company_id and assignee_id (annotated above)
        events.publish("message.updated", message_payload(message), conversation=message)
        if status == Message.Status.FAILED:
            notifications.send_failed(message, message.company_id)
    logger.info("outbound: message=%s status=%s", message.pk, status)
    return True


def _moves_forward(current: str, status: str) -> bool:
    """The one rule for a status change: forward only (a late 'sent' never overwrites 'read');
    'failed' only from queued or sent."""
    if status == Message.Status.FAILED:
        return current in (Message.Status.QUEUED, Message.Status.SENT)
    return STATUS_RANK[status] > STATUS_RANK.get(current, 0)


def record_delivery_statuses(changes: Sequence[tuple[int, str, str]]) -> int:
    """Apply many status changes, `(message id, status, error)` in the order they happened,
    exactly as record_delivery_status would one by one, in three statements whatever their
    number: one locked read of the messages, one `UPDATE ... FROM unnest(...)`, and the events
    (one `message.updated` per changed message, its final state) after commit. Call it inside
    the caller's transaction (the webhook inbox's batch); returns the changes applied."""
    if not changes:
        return 0
    ids = sorted({message_id for message_id, _status, _error in changes})
    with transaction.atomic(savepoint=False):
        messages = {
            message.pk: message
            for message in Message.objects.select_for_update(of=("self",))
            .annotate(
                company_id=F("conversation__company_id"),
                assignee_id=F("conversation__assignee_id"),
            )
            .filter(pk__in=ids, direction=Message.Direction.OUTBOUND)
            .order_by("pk")  # locks taken in one order: no deadlock between two batches
        }
        applied, changed, failed = 0, {}, []
        now = timezone.now()
        for message_id, status, error in changes:
            message = messages.get(message_id)
            if message is None or not _moves_forward(message.status, status):
                continue
            message.status, message.error = status, error[:2000]
            if status in STATUS_TIME_FIELD:
                setattr(message, STATUS_TIME_FIELD[status], now)
            if status == Message.Status.FAILED:
                failed.append(copy.copy(message))  # notified as it was when it failed
            changed[message_id] = message
            applied += 1
        if changed:
            rows = list(changed.values())
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE messaging_message AS m SET status = v.status, error = v.error,"
                    " sent_at = v.sent_at, delivered_at = v.delivered_at, read_at = v.read_at"
                    " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[],"
                    " %s::timestamptz[], %s::timestamptz[])"
                    " AS v(id, status, error, sent_at, delivered_at, read_at)"
                    " WHERE m.id = v.id",
                    [
                        [m.pk for m in rows],
                        [m.status for m in rows],
                        [m.error for m in rows],
                        [m.sent_at for m in rows],
                        [m.delivered_at for m in rows],
                        [m.read_at for m in rows],
                    ],
                )
            for message in rows:
                events.publish("message.updated", message_payload(message), conversation=message)
            for message in failed:
                notifications.send_failed(message, message.company_id)
    if changed:
        logger.info("outbound: %s status change(s) on %s message(s)", applied, len(changed))
    return applied


# ---------------------------------------------------------------- the sweeper (beat)


def _requeue_due() -> list[int]:
    """Queued, unclaimed messages due for longer than OUTBOX_REQUEUE_SECONDS: their task was
    lost. Each is queued again (the claim makes a duplicate harmless) and marked due now, so
    it is re-queued at most once per period."""
    now = timezone.now()
    overdue = now - timedelta(seconds=float(settings.OUTBOX_REQUEUE_SECONDS))
    rows = Message.objects.filter(
        Q(next_attempt_at__lte=overdue) | Q(next_attempt_at__isnull=True, created_at__lte=overdue),
        status=Message.Status.QUEUED,
        direction=Message.Direction.OUTBOUND,
        send_claimed_at__isnull=True,
    )
    ids = list(rows.order_by("next_attempt_at").values_list("pk", flat=True)[:5000])
    if ids:
        Message.objects.filter(pk__in=ids, send_claimed_at__isnull=True).update(next_attempt_at=now)
        for message_id in ids:
            enqueue_delivery(message_id)
        logger.warning("outbox: re-queued %d message(s) whose task was lost", len(ids))
    return ids


def _settle_stale_sent(message_id: int, claim, external_id: str) -> bool:
    return _record_sent(message_id, external_id)


def _settle_stale_unknown(message_id: int, claim) -> bool:
    return record_delivery_status(message_id, Message.Status.FAILED, error=sending.UNKNOWN_REASON)


def sweep_outbox() -> dict:
    """Beat: settle stale claims (sent by record, else unknown -> failed with the reason) and
    re-queue due messages no task took; drop idempotency keys older than a day."""
    from crm.idempotency import purge_expired

    sent, unknown = MESSAGES.settle_stale(_settle_stale_sent, _settle_stale_unknown)
    requeued = _requeue_due()
    return {
        "settled_sent": sent,
        "settled_unknown": unknown,
        "requeued": len(requeued),
        "idempotency_purged": purge_expired(),
    }


# ---------------------------------------------------------------- an agent's retry

NOT_FAILED = gettext_lazy("Only a failed message can be sent again.")


def retry_message(actor, message: Message) -> Message:
    """A failed message goes out again: a new attempt of the same message (same row)."""
    if message.direction != Message.Direction.OUTBOUND or message.status != Message.Status.FAILED:
        raise ValidationError({"message": [NOT_FAILED]})
    source = message.conversation.source
    if source is None or not channels.live(source):
        raise ValidationError(
            {"conversation": [_("This conversation's channel is deactivated; it cannot send.")]}
        )
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, status=Message.Status.FAILED).update(
            status=Message.Status.QUEUED,
            error="",
            send_claimed_at=None,
            send_attempts=0,
            next_attempt_at=timezone.now(),
        )
        if not changed:
            raise ValidationError({"message": [NOT_FAILED]})
        message.refresh_from_db()
        events.publish(
            "message.updated",
            message_payload(message),
            conversation=message.conversation,
        )
        transaction.on_commit(lambda: enqueue_delivery(message.pk), robust=True)
    logger.info("outbound: message=%s retried by user=%s", message.pk, getattr(actor, "pk", None))
    return message
