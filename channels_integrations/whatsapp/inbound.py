"""One incoming WhatsApp message, from the Cloud API's webhook or a QR-linked session, into
the inbox (through ingest_inbound_many, the one door in) with its announced attachments."""

import logging
from datetime import datetime

from django.db import transaction

from messaging.models import Conversation, Message
from messaging.services import (
    Inbound,
    IngestResult,
    Sender,
    ingest_inbound_many,
    record_delivery_statuses,
)
from messaging.services.attachments import IncomingAttachment
from messaging.services.inbox import mark_inbound_deleted, record_inbound_edit
from messaging.services.reactions import record_customer_reaction

from ..models import WhatsAppNumber
from . import PLATFORM, cloud, metrics
from .broadcasts import record_recipient_statuses
from .types import AnnouncedMedia

logger = logging.getLogger(__name__)


def whatsapp_inbound(
    *,
    wamid: str,
    phone_digits: str,
    name: str,
    body: str,
    received_at: datetime,
    media: list[AnnouncedMedia] = (),
    metadata: dict | None = None,
    notice: bool = False,
) -> Inbound:
    """One WhatsApp message as the inbox takes it: its thread is the client's number."""
    phone = f"+{phone_digits.lstrip('+')}"
    attachments = tuple(
        IncomingAttachment(
            kind=item.kind,
            filename=item.filename,
            content_type=item.content_type,
            size=item.size,
            external_id=item.media_id,
            download_ref=item.ref,
        )
        for item in media
    )
    return Inbound(
        phone_digits.lstrip("+"),
        wamid,
        Sender(address=phone, name=name, phone=phone),
        body,
        received_at=received_at,
        metadata=metadata or {},
        notice=notice,
        attachments=attachments,
    )


def ingest_whatsapp_messages(number: WhatsAppNumber, inbound: list[Inbound]) -> list[IngestResult]:
    """Store each once, in order (one pipeline: ingest_inbound_many); those stored, but
    notices, are counted in `messages_received` once committed."""
    results = ingest_inbound_many(number, inbound)
    received = sum(
        result.created and not item.notice for item, result in zip(inbound, results, strict=True)
    )
    if received:
        transaction.on_commit(
            lambda: metrics.increment("messages_received", number.company_id, by=received)
        )
    return results


STATUS_BY_CLOUD = {
    "sent": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "read": Message.Status.READ,
    "failed": Message.Status.FAILED,
}


def receive_cloud_webhook(number: WhatsAppNumber, payload) -> dict:
    """Store the messages of one verified Cloud API webhook delivery, apply its reactions,
    edits, deletions and status updates. Changes addressed to another phone number id of the
    same app are not ours: ignored. A repeated delivery stores nothing twice. Returns counts
    (for the log and the answer); `usable` 0 with something skipped: nothing could be read."""
    return receive_cloud_webhooks(number, [payload])


def receive_cloud_webhooks(number: WhatsAppNumber, payloads: list) -> dict:
    """receive_cloud_webhook for several deliveries of one number at once, in their order:
    the messages of them all (one pipeline), then their reactions, edits and deletions (each
    finds the message it is about, stored by its delivery or an earlier one), then every
    status update of them all in one go (statuses are about our outbound messages, which no
    delivery creates; their order is kept). Counts summed."""
    deliveries = [
        cloud.parse_webhook(payload, number.cloud_phone_number_id) for payload in payloads
    ]
    # Every message of every delivery first, in order, in one pipeline; then the reactions,
    # edits and deletions, in order (each is about a message sent before it).
    inbound = []
    for delivery in deliveries:
        for item in delivery.messages:
            metadata = {"type": item.kind, "raw": item.raw}
            if item.quoted_wamid:
                metadata["quoted"] = item.quoted_wamid
            if item.content:
                metadata["content"] = item.content
            inbound.append(
                whatsapp_inbound(
                    wamid=item.wamid,
                    phone_digits=item.wa_id,
                    name=item.name,
                    body=item.body,
                    received_at=item.timestamp,
                    media=item.media,
                    metadata=metadata,
                    notice=bool(item.content) and item.content["kind"] == "notice",
                )
            )
    results = ingest_whatsapp_messages(number, inbound) if inbound else []
    stored = sum(result.created for result in results)
    duplicates = len(results) - stored
    reacted = edited = deleted = 0
    for delivery in deliveries:
        for reaction in delivery.reactions:
            reacted += record_customer_reaction(
                number, reaction.wa_id, reaction.target_wamid, reaction.emoji
            )
        for edit in delivery.edits:
            edited += record_inbound_edit(number, edit.wa_id, edit.original_wamid, edit.body)
        for revoke in delivery.revokes:
            deleted += mark_inbound_deleted(number, [revoke.original_wamid], revoke.wa_id)
    reports = [
        (update.wamid, STATUS_BY_CLOUD[update.status], update.error)
        for delivery in deliveries
        for update in delivery.statuses
        if update.status in STATUS_BY_CLOUD
    ]
    updated = apply_delivery_reports(number, reports)
    foreign = sum(delivery.foreign for delivery in deliveries)
    skipped = sum(delivery.skipped for delivery in deliveries)
    if foreign:
        logger.info(
            "cloud webhook: number=%s %s change(s) for another phone number id ignored",
            number.pk,
            foreign,
        )
    logger.info(
        "cloud webhook: number=%s deliveries=%s stored=%s duplicates=%s statuses=%s "
        "reactions=%s edits=%s deletions=%s skipped=%s",
        number.pk,
        len(deliveries),
        stored,
        duplicates,
        updated,
        reacted,
        edited,
        deleted,
        skipped,
    )
    return {
        "stored": stored,
        "duplicates": duplicates,
        "statuses": updated,
        "reactions": reacted,
        "edits": edited,
        "deletions": deleted,
        "ignored": foreign,
        "skipped": skipped,
        "usable": sum(delivery.usable for delivery in deliveries),
    }


def apply_delivery_reports(number: WhatsAppNumber, reports: list[tuple[str, str, str]]) -> int:
    """What WhatsApp reported about our sends from `number`, `(wamid, status, error)` in the
    order it happened (statuses in messaging's words): Cloud status webhooks and QR sessions'
    receipts alike. One query finds every outbound message they are about (a broadcast's
    deliveries carry many); each moves forward in order (messaging's rule), all in one locked
    read and one update; the others may be a broadcast's recipients. A report on a wamid we do
    not know (yet) changes nothing. Call it inside a transaction."""
    if not reports:
        return 0
    # Found by their wamid first (msg_out_external_idx), then kept if they are this number's:
    # a join from the number's conversations let a planner that misjudged their count (a
    # burst of new clients) scan the messages once per conversation.
    found = list(
        Message.objects.filter(
            direction=Message.Direction.OUTBOUND,
            external_id__in={wamid for wamid, _status, _error in reports},
        )
        .order_by()
        .values_list("pk", "external_id", "conversation_id")
    )
    ours = set(
        Conversation.objects.filter(
            pk__in={conversation_id for _pk, _wamid, conversation_id in found},
            platform=PLATFORM,
            source_id=number.pk,
        ).values_list("pk", flat=True)
    )
    ids_by_wamid: dict[str, list[int]] = {}
    for pk, wamid, conversation_id in found:
        if conversation_id in ours:
            ids_by_wamid.setdefault(wamid, []).append(pk)
    changes = [
        (message_id, status, error)
        for wamid, status, error in reports
        for message_id in ids_by_wamid.get(wamid, ())
    ]
    # The rest may be a broadcast's sends (recipients, not inbox messages).
    recipients = record_recipient_statuses(
        number.pk, [report for report in reports if report[0] not in ids_by_wamid]
    )
    return record_delivery_statuses(changes) + recipients


def _receiving_cloud_number(number_id: int) -> WhatsAppNumber | None:
    """The Cloud number whose stored deliveries are ingested; None when it is gone, turned off
    or being deleted (its deliveries are dropped)."""
    number = WhatsAppNumber.objects.filter(
        pk=number_id, provider=WhatsAppNumber.Provider.CLOUD, is_active=True
    ).first()
    if number is None or number.status == WhatsAppNumber.Status.DELETING:
        return None
    return number


def cloud_webhook_receiver(number_id: int):
    """For the webhook inbox: what ingests a stored delivery of this Cloud number (None: see
    _receiving_cloud_number)."""
    number = _receiving_cloud_number(number_id)
    return number and (lambda payload: receive_cloud_webhook(number, payload))


def cloud_webhook_batch_receiver(number_id: int):
    """For the webhook inbox's batches: receive_cloud_webhooks for this number (None: see
    _receiving_cloud_number)."""
    number = _receiving_cloud_number(number_id)
    return number and (lambda payloads: receive_cloud_webhooks(number, payloads))


def cloud_delivery_threads(number_id: int):
    """For the webhook inbox: which conversations (the clients' wa_ids) a stored delivery
    touches, so a delivery that fails holds back only later ones of the same conversations."""

    def threads(payload) -> set[str]:
        delivery = cloud.parse_webhook(payload)
        found = {item.wa_id for item in delivery.messages}
        found |= {item.wa_id for item in (*delivery.reactions, *delivery.edits, *delivery.revokes)}
        for entry in _dicts(payload.get("entry") if isinstance(payload, dict) else None):
            for change in _dicts(entry.get("changes")):
                value = change.get("value")
                for status in _dicts(value.get("statuses") if isinstance(value, dict) else None):
                    if isinstance(status.get("recipient_id"), str):
                        found.add(status["recipient_id"])
        return found

    return threads


def _dicts(value) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
