"""Reactions on inbox messages: the customer's (from a channel's inbound mapping) and ours (an
agent's, sent through the channel boundary: `Channel.react`). A reaction is never a message
and never unread; each change publishes `message.reacted` after commit."""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crm.celery import task

from .. import channels, events
from ..models import Message, MessageReaction
from .chats import validate_emoji

logger = logging.getLogger(__name__)


def reactions_of(message: Message) -> list[dict]:
    """The message's reactions as pages and events show them (the customer's first)."""
    rows = MessageReaction.objects.filter(message_id=message.pk).order_by("-from_customer", "id")
    return [
        {
            "emoji": row.emoji,
            "from_customer": row.from_customer,
            "author_id": row.author_id,
            "error": row.error,
        }
        for row in rows
    ]


def _publish(message: Message, conversation) -> None:
    events.publish(
        "message.reacted",
        {
            "id": message.pk,
            "conversation_id": message.conversation_id,
            "reactions": reactions_of(message),
        },
        conversation=conversation,
    )


def record_customer_reaction(source, thread_id: str, target_external_id: str, emoji: str) -> bool:
    """The customer reacted to a message of their thread (ours or theirs) with `emoji`, or
    removed their reaction (`emoji` empty). Returns whether anything changed; a target we do
    not have is logged and ignored (never a message of its own)."""
    emoji = (emoji or "").replace("\x00", "").strip()[:32]
    platform = channels.for_source(source).platform
    with transaction.atomic():
        message = (
            Message.objects.select_for_update()
            .filter(
                conversation__platform=platform,
                conversation__source_id=source.pk,
                conversation__external_thread_id=str(thread_id),
                external_id=target_external_id,
            )
            .first()
        )
        if message is None:
            logger.info("reaction: %s target not found source=%s; ignored", platform, source.pk)
            return False
        current = MessageReaction.objects.filter(message=message, from_customer=True).first()
        if not emoji:
            if current is None:
                return False
            current.delete()
        elif current is None:
            MessageReaction.objects.create(message=message, from_customer=True, emoji=emoji)
        elif current.emoji == emoji:
            return False
        else:
            current.emoji = emoji
            current.save(update_fields=["emoji", "updated_at"])
        _publish(message, message.conversation)
    logger.info("reaction: customer %s message=%s", "set" if emoji else "removed", message.pk)
    return True


def _check_reactable(message: Message) -> None:
    conversation = message.conversation
    if not conversation.capabilities.reactions:
        raise ValidationError(
            {
                "emoji": [
                    _("%(channel)s has no reactions.")
                    % {"channel": channels.get(conversation.platform).label}
                ]
            }
        )
    if message.direction != Message.Direction.INBOUND or not message.external_id:
        raise ValidationError({"message": [_("Only a customer's message can be reacted to.")]})
    if message.metadata.get("deleted"):
        raise ValidationError({"message": [_("This message was deleted.")]})


def react(actor, message: Message, emoji: str) -> list[dict]:
    """Set our reaction on a customer's message (replacing ours, if any) and send it."""
    emoji = validate_emoji(emoji)
    _check_reactable(message)
    with transaction.atomic():
        current = (
            MessageReaction.objects.select_for_update()
            .filter(message=message, from_customer=False)
            .first()
        )
        if current is None:
            MessageReaction.objects.create(
                message=message, from_customer=False, author=actor, emoji=emoji
            )
        elif current.emoji != emoji or current.error:
            current.emoji, current.author, current.error = emoji, actor, ""
            current.save(update_fields=["emoji", "author", "error", "updated_at"])
        else:
            return reactions_of(message)  # the same again: nothing to send
        _publish(message, message.conversation)
        transaction.on_commit(lambda: _queue_send(message.pk), robust=True)
    logger.info("reaction: user=%s reacted to message=%s", actor.pk, message.pk)
    return reactions_of(message)


def unreact(actor, message: Message) -> list[dict]:
    """Remove our reaction from a customer's message (and tell the channel)."""
    _check_reactable(message)
    with transaction.atomic():
        removed, _ = MessageReaction.objects.filter(message=message, from_customer=False).delete()
        if removed:
            _publish(message, message.conversation)
            transaction.on_commit(lambda: _queue_send(message.pk), robust=True)
    return reactions_of(message)


def _queue_send(message_id: int) -> None:
    task("messaging.tasks.send_reaction").delay(message_id)


def send_reaction(message_id: int, *, final: bool = True) -> float | None:
    """Send our current reaction on the message (none: a removal) through its channel. The
    far end keeps one reaction of ours per message, so sending the current state again is
    harmless: a retry, or two changes in a row, converge on what the row says.

    Returns the seconds to wait before trying again when the channel refused for now
    (network, rate limit, holder not connected) and this is not the `final` attempt; else
    None (sent, or the refusal is kept on the reaction)."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        return None
    conversation = message.conversation
    source = conversation.source
    channel = channels.get(conversation.platform)
    ours = MessageReaction.objects.filter(message=message, from_customer=False).first()
    emoji = ours.emoji if ours else ""
    outbound = channels.OutboundReaction(
        key=f"reaction:{message.pk}",
        platform=conversation.platform,
        company_id=conversation.company_id,
        source_id=conversation.source_id,
        to_address=channel.client_address(conversation),
        target_external_id=message.external_id,
        emoji=emoji,
        route=channel.route(source, conversation=conversation) if source else None,
    )
    try:
        if source is None or not channels.live(source):
            raise channels.SendError(_("This conversation's channel is deactivated."))
        channel.react(outbound)
    except channels.SendError as exc:
        logger.warning("reaction: message=%s not sent: %s", message.pk, exc.reason)
        if exc.transient and not final:
            return exc.retry_after or 2.0
        if ours is not None:
            with transaction.atomic():
                updated = MessageReaction.objects.filter(pk=ours.pk, emoji=emoji).update(
                    error=exc.reason[:500]
                )
                if updated:
                    _publish(message, conversation)
        return None
    logger.info("reaction: message=%s sent (%s)", message.pk, "set" if emoji else "removed")
    return None
