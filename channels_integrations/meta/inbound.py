"""One verified webhook delivery of a Page or an Instagram account into the inbox: messages
through ingest_inbound (the one door in; idempotent by `mid`) with their attachments recorded
(kind, and the URL Meta gave, in the message's metadata), reactions onto the message they
target (the shared MessageReaction: one per client, removed by `unreact`), receipts moving our outbound
messages forward (never back)."""

import logging
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from crm.celery import task
from messaging.channels import for_source
from messaging.models import Message
from messaging.services import Sender, ingest_inbound, record_delivery_status
from messaging.services.attachments import IncomingAttachment, add_attachments
from messaging.services.reactions import record_customer_reaction

from . import parse
from .models import InstagramAccount

logger = logging.getLogger(__name__)

PROFILE_TASK = "channels_integrations.meta.tasks.look_up_client_profile"
ATTACHMENT_KINDS = {"image": "image", "video": "video", "audio": "audio", "file": "document"}


def own_ids(account) -> set[str]:
    ids = {account.page_id}
    if isinstance(account, InstagramAccount):
        ids.add(account.ig_user_id)
    return {value for value in ids if value}


def _shown(item: parse.Inbound) -> str:
    """The text an agent sees: the client's words, else what the message is."""
    if item.body:
        return item.body
    if item.kind == "story_mention":
        return "[story mention]"
    names = sorted({attachment.kind for attachment in item.attachments})
    return f"[{', '.join(names)}]" if names else f"[{item.kind}]"


def _filename(url: str, kind: str) -> str:
    try:
        name = PurePosixPath(urlsplit(url).path).name
    except ValueError:
        name = ""
    return (name or kind)[:255]


def _store(account, item: parse.Inbound) -> bool:
    with transaction.atomic():
        result = ingest_inbound(
            account,
            external_thread_id=item.sender_id,
            external_message_id=item.mid,
            sender=Sender(address=item.sender_id),
            body=_shown(item),
            received_at=item.timestamp,
            metadata={"type": item.kind, **item.metadata},
        )
        if result.created and item.attachments:
            add_attachments(
                result.message,
                [
                    IncomingAttachment(
                        kind=ATTACHMENT_KINDS.get(attachment.kind, "other"),
                        filename=_filename(attachment.url, attachment.kind),
                        external_id=attachment.url if len(attachment.url) <= 255 else "",
                        download_ref={"url": attachment.url} if attachment.url else None,
                    )
                    for attachment in item.attachments
                ],
            )
    if result.created and result.conversation.client_id is None:
        transaction.on_commit(lambda: enqueue_profile_lookup(result.conversation.pk), robust=True)
    return result.created


def enqueue_profile_lookup(conversation_id: int) -> None:
    """Name the new thread's client from their public profile, in the background (a name is
    a nicety: a broker that is down loses only that)."""
    try:
        task(PROFILE_TASK).delay(conversation_id)
    except Exception:
        logger.warning("conversation=%s profile look-up not queued (broker down?)", conversation_id)


def _react(account, platform: str, reaction: parse.Reaction) -> bool:
    """The client's reaction on the message it targets (or its removal): one reaction model
    for every channel (messaging.services.reactions), shown live under the message."""
    emoji = "" if reaction.action == "unreact" else (reaction.emoji or "\u2764")
    return record_customer_reaction(account, reaction.sender_id, reaction.mid, emoji)


def _receipt(account, platform: str, receipt: parse.Receipt) -> int:
    outbound = Message.objects.filter(
        conversation__platform=platform,
        conversation__source_id=account.pk,
        conversation__external_thread_id=receipt.sender_id,
        direction=Message.Direction.OUTBOUND,
    )
    if receipt.mids:
        outbound = outbound.filter(external_id__in=receipt.mids)
    elif receipt.watermark is not None:  # everything we sent up to then
        outbound = outbound.filter(sent_at__lte=receipt.watermark, external_id__isnull=False)
    status = Message.Status.READ if receipt.status == "read" else Message.Status.DELIVERED
    updated = 0
    for message_id in outbound.values_list("pk", flat=True)[:500]:
        updated += record_delivery_status(message_id, status)
    return updated


def receive_webhook(account, payload) -> dict:
    """Apply one verified delivery. A repeated delivery stores nothing twice. Counts, for the
    log and the answer."""
    platform = for_source(account).platform
    delivery = parse.parse(payload, own_ids(account))
    stored = duplicates = reactions = receipts = 0
    for item in delivery.messages:
        created = _store(account, item)
        stored, duplicates = stored + created, duplicates + (not created)
    for reaction in delivery.reactions:
        reactions += _react(account, platform, reaction)
    for receipt in delivery.receipts:
        receipts += _receipt(account, platform, receipt)
    if stored:
        type(account).objects.filter(pk=account.pk).update(last_event_at=timezone.now())
    logger.info(
        "meta webhook: %s account=%s stored=%s duplicates=%s reactions=%s receipts=%s skipped=%s",
        platform,
        account.pk,
        stored,
        duplicates,
        reactions,
        receipts,
        delivery.skipped,
    )
    return {
        "stored": stored,
        "duplicates": duplicates,
        "reactions": reactions,
        "statuses": receipts,
        "skipped": delivery.skipped,
    }


def _receiver(model, account_id: int):
    account = model.objects.filter(pk=account_id, is_active=True).first()
    if account is None:
        return None
    return lambda payload: receive_webhook(account, payload)


def messenger_webhook_receiver(page_id: int):
    """For the webhook inbox: what ingests a stored delivery of this Page (None: gone or off)."""
    from .models import MessengerPage

    return _receiver(MessengerPage, page_id)


def instagram_webhook_receiver(account_id: int):
    """For the webhook inbox: what ingests a stored delivery of this Instagram account."""
    return _receiver(InstagramAccount, account_id)
