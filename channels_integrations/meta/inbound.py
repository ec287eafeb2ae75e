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
from messaging.services import Inbound, Sender, ingest_inbound_many, record_delivery_statuses
from messaging.services.attachments import IncomingAttachment
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


def _inbound(item: parse.Inbound) -> Inbound:
    """One message as the inbox takes it: its thread is the sender's page-scoped id."""
    attachments = tuple(
        IncomingAttachment(
            kind=ATTACHMENT_KINDS.get(attachment.kind, "other"),
            filename=_filename(attachment.url, attachment.kind),
            external_id=attachment.url if len(attachment.url) <= 255 else "",
            download_ref={"url": attachment.url} if attachment.url else None,
        )
        for attachment in item.attachments
    )
    return Inbound(
        item.sender_id,
        item.mid,
        Sender(address=item.sender_id),
        _shown(item),
        received_at=item.timestamp,
        metadata={"type": item.kind, **item.metadata},
        attachments=attachments,
    )


def _store(account, items: list[parse.Inbound]) -> int:
    """Store each once, in order (one pipeline: ingest_inbound_many); a new thread's client
    is named from their profile after commit. How many were stored."""
    if not items:
        return 0
    results = ingest_inbound_many(account, [_inbound(item) for item in items])
    unnamed = {
        result.conversation.pk
        for result in results
        if result.created and result.conversation.client_id is None
    }
    for conversation_id in sorted(unnamed):
        transaction.on_commit(
            lambda conversation_id=conversation_id: enqueue_profile_lookup(conversation_id),
            robust=True,
        )
    return sum(result.created for result in results)


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


def _receipt_changes(account, platform: str, receipt: parse.Receipt) -> list[tuple[int, str, str]]:
    """The status changes one receipt means: each outbound message it names (or sent up to
    its watermark) moves to delivered or read."""
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
    return [(message_id, status, "") for message_id in outbound.values_list("pk", flat=True)[:500]]


def receive_webhook(account, payload) -> dict:
    """Apply one verified delivery. A repeated delivery stores nothing twice. Counts, for the
    log and the answer."""
    return receive_webhooks(account, [payload])


def receive_webhooks(account, payloads: list) -> dict:
    """receive_webhook for several deliveries of one account at once, in their order: the
    messages of them all (one pipeline), then their reactions, then the receipts of them all,
    in order, as one locked read and one update (receipts move our outbound messages, which
    no delivery creates). Counts summed."""
    platform = for_source(account).platform
    own = own_ids(account)
    deliveries = [parse.parse(payload, own) for payload in payloads]
    # Every message of every delivery first, in order, in one pipeline; then the reactions,
    # in order (each is about a message sent before it).
    messages = [item for delivery in deliveries for item in delivery.messages]
    stored = _store(account, messages)
    duplicates = len(messages) - stored
    reactions = 0
    for delivery in deliveries:
        for reaction in delivery.reactions:
            reactions += _react(account, platform, reaction)
    changes = [
        change
        for delivery in deliveries
        for receipt in delivery.receipts
        for change in _receipt_changes(account, platform, receipt)
    ]
    receipts = record_delivery_statuses(changes)
    if stored:
        type(account).objects.filter(pk=account.pk).update(last_event_at=timezone.now())
    skipped = sum(delivery.skipped for delivery in deliveries)
    logger.info(
        "meta webhook: %s account=%s deliveries=%s stored=%s duplicates=%s reactions=%s "
        "receipts=%s skipped=%s",
        platform,
        account.pk,
        len(deliveries),
        stored,
        duplicates,
        reactions,
        receipts,
        skipped,
    )
    return {
        "stored": stored,
        "duplicates": duplicates,
        "reactions": reactions,
        "statuses": receipts,
        "skipped": skipped,
    }


def _receiver(model, account_id: int, *, batch: bool = False):
    account = model.objects.filter(pk=account_id, is_active=True).first()
    if account is None:
        return None
    if batch:
        return lambda payloads: receive_webhooks(account, payloads)
    return lambda payload: receive_webhook(account, payload)


def messenger_webhook_receiver(page_id: int):
    """For the webhook inbox: what ingests a stored delivery of this Page (None: gone or off)."""
    from .models import MessengerPage

    return _receiver(MessengerPage, page_id)


def instagram_webhook_receiver(account_id: int):
    """For the webhook inbox: what ingests a stored delivery of this Instagram account."""
    return _receiver(InstagramAccount, account_id)


def messenger_webhook_batch_receiver(page_id: int):
    """For the webhook inbox's batches: receive_webhooks for this Page (None: gone or off)."""
    from .models import MessengerPage

    return _receiver(MessengerPage, page_id, batch=True)


def instagram_webhook_batch_receiver(account_id: int):
    """For the webhook inbox's batches: receive_webhooks for this Instagram account."""
    return _receiver(InstagramAccount, account_id, batch=True)


def _threads(model, account_id: int):
    account = model.objects.filter(pk=account_id).first()
    own = own_ids(account) if account is not None else set()

    def threads(payload) -> set[str]:
        delivery = parse.parse(payload, own)
        return {
            item.sender_id for item in (*delivery.messages, *delivery.reactions, *delivery.receipts)
        }

    return threads


def messenger_delivery_threads(page_id: int):
    """For the webhook inbox: which conversations (the clients' ids) a stored delivery of this
    Page touches, so a delivery that fails holds back only later ones of the same ones."""
    from .models import MessengerPage

    return _threads(MessengerPage, page_id)


def instagram_delivery_threads(account_id: int):
    """The same for an Instagram account."""
    return _threads(InstagramAccount, account_id)
