import logging
import random

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from .models import Message
from .providers import OutboundMessage, SendError, provider_for
from .services import record_delivery_status
from .signals import outbound_message_sent

logger = logging.getLogger(__name__)

MAX_SEND_RETRIES = 5


def _outbound(message: Message) -> OutboundMessage:
    conversation = message.conversation
    client = conversation.client
    to_address = {
        "whatsapp": str(client.phone)
        if client and client.phone
        else conversation.external_thread_id,
        "telegram": conversation.external_thread_id,
        "email": client.email if client and client.email else "",
    }.get(conversation.platform, conversation.external_thread_id)
    source = conversation.source
    extra = source.sending_details(message) if hasattr(source, "sending_details") else {}
    if quoted := message.metadata.get("quoted"):
        extra["quoted"] = quoted
    return OutboundMessage(
        message_id=message.pk,
        platform=conversation.platform,
        source_id=source.pk,
        thread_id=conversation.external_thread_id,
        to_address=to_address,
        body=message.body,
        subject=conversation.subject,
        extra=extra,
    )


def _backoff(retries: int) -> float:
    return min(300.0, 2.0**retries) * (0.5 + random.random())  # noqa: S311 (jitter, not crypto)


@shared_task(bind=True, max_retries=MAX_SEND_RETRIES, ignore_result=True)
def deliver_message(self, message_id: int) -> None:
    """Hand one queued message to its channel's provider, at most once.

    The row is claimed with a conditional UPDATE before the provider is called, so a task
    delivered twice (a broker redelivery, a duplicate .delay) finds it claimed and does
    nothing. A transient failure releases the claim and retries with backoff.
    """
    claimed = Message.objects.filter(
        pk=message_id, status=Message.Status.QUEUED, send_claimed_at__isnull=True
    ).update(send_claimed_at=timezone.now())
    if not claimed:
        logger.info("send: message=%s already claimed or not queued; skipping", message_id)
        return
    message = Message.objects.select_related(
        "conversation__client",
        "conversation__whatsapp_number",
        "conversation__telegram_account",
        "conversation__email_account",
    ).get(pk=message_id)
    platform = message.conversation.platform
    try:
        receipt = provider_for(platform).send_text(_outbound(message))
    except SendError as exc:
        if exc.transient and self.request.retries < self.max_retries:
            with transaction.atomic():
                Message.objects.filter(pk=message_id).update(
                    send_claimed_at=None, error=f"Retrying: {exc.reason}"
                )
            countdown = exc.retry_after or _backoff(self.request.retries)
            logger.warning(
                "send: message=%s transient failure, retry in %.0fs", message_id, countdown
            )
            raise self.retry(countdown=countdown) from None
        logger.warning("send: message=%s failed on %s", message_id, platform)
        record_delivery_status(message_id, Message.Status.FAILED, error=exc.reason)
        return
    except Exception:
        # The provider broke in a way it did not describe: we cannot know whether it sent,
        # so the message is failed (never retried automatically) and the error logged.
        logger.exception("send: message=%s provider error on %s", message_id, platform)
        record_delivery_status(
            message_id, Message.Status.FAILED, error="The channel reported an unexpected error."
        )
        return
    record_delivery_status(message_id, Message.Status.SENT, external_id=receipt.external_id)
    outbound_message_sent.send(
        sender=Message,
        message_id=message_id,
        conversation_id=message.conversation_id,
        platform=platform,
        source_id=message.conversation.source.pk,
        external_id=receipt.external_id,
    )
    logger.info("send: message=%s sent on %s", message_id, platform)
