"""One incoming WhatsApp message, from the Cloud API's webhook or a QR-linked session, into
the inbox (through ingest_inbound, the one door in) with its announced attachments."""

import logging
from datetime import datetime

from django.db import transaction

from messaging.models import Message
from messaging.services import IngestResult, Sender, ingest_inbound, record_delivery_status
from messaging.services.attachments import IncomingAttachment, add_attachments

from ..models import WhatsAppNumber
from . import PLATFORM, cloud, metrics
from .types import AnnouncedMedia

logger = logging.getLogger(__name__)


def ingest_whatsapp_message(
    number: WhatsAppNumber,
    *,
    wamid: str,
    phone_digits: str,
    name: str,
    body: str,
    received_at: datetime,
    media: list[AnnouncedMedia] = (),
    metadata: dict | None = None,
) -> IngestResult:
    """Store it once (a duplicate delivery stores nothing and counts nothing)."""
    phone = f"+{phone_digits.lstrip('+')}"
    with transaction.atomic():
        result = ingest_inbound(
            number,
            external_thread_id=phone_digits.lstrip("+"),
            external_message_id=wamid,
            sender=Sender(address=phone, name=name, phone=phone),
            body=body,
            received_at=received_at,
            metadata=metadata or {},
        )
        if result.created and media:
            add_attachments(
                result.message,
                [
                    IncomingAttachment(
                        kind=item.kind,
                        filename=item.filename,
                        content_type=item.content_type,
                        size=item.size,
                        external_id=item.media_id,
                        download_ref=item.ref,
                    )
                    for item in media
                ],
            )
    if result.created:
        metrics.increment("messages_received", number.company_id)
    return result


STATUS_BY_CLOUD = {
    "sent": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "read": Message.Status.READ,
    "failed": Message.Status.FAILED,
}


def receive_cloud_webhook(number: WhatsAppNumber, payload: dict) -> dict:
    """Store the messages of one verified Cloud API webhook delivery and apply its status
    updates. A repeated delivery stores nothing twice. Returns counts, for the log."""
    messages, statuses = cloud.parse_webhook(payload)
    stored = duplicates = updated = 0
    for item in messages:
        result = ingest_whatsapp_message(
            number,
            wamid=item.wamid,
            phone_digits=item.wa_id,
            name=item.name,
            body=item.body,
            received_at=item.timestamp,
            media=item.media,
            metadata={
                "type": item.kind,
                **({"quoted": item.quoted_wamid} if item.quoted_wamid else {}),
            },
        )
        stored, duplicates = stored + result.created, duplicates + (not result.created)
    for update in statuses:
        status = STATUS_BY_CLOUD.get(update.status)
        ids = Message.objects.filter(
            conversation__platform=PLATFORM,
            conversation__source_id=number.pk,
            direction=Message.Direction.OUTBOUND,
            external_id=update.wamid,
        ).values_list("pk", flat=True)
        for message_id in ids if status else ():
            updated += record_delivery_status(message_id, status, error=update.error)
    logger.info(
        "cloud webhook: number=%s stored=%s duplicates=%s statuses=%s",
        number.pk,
        stored,
        duplicates,
        updated,
    )
    return {"stored": stored, "duplicates": duplicates, "statuses": updated}
