"""The inbox pipeline: one door in (`ingest_inbound`), one door out (`send_message`), and the
conversation writes agents make. Every change is published after commit via messaging.events."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from channels_integrations.models import EmailAccount, TelegramAccount, WhatsAppNumber
from crm.db.upsert import insert_unless_conflict
from crm.models import Client

from .. import events
from ..models import SOURCE_FIELD_BY_PLATFORM, Conversation, Message, Platform
from ..payloads import conversation_payload, message_payload
from ..signals import inbound_message_stored

logger = logging.getLogger(__name__)

PLATFORM_BY_SOURCE = {
    WhatsAppNumber: Platform.WHATSAPP,
    TelegramAccount: Platform.TELEGRAM,
    EmailAccount: Platform.EMAIL,
}
PREVIEW_LENGTH = 200


class SourceInactive(Exception):
    """The number/account is deactivated or being deleted: it receives and sends nothing."""


@dataclass(frozen=True)
class Sender:
    """Who wrote an inbound message, as the channel knows them."""

    address: str  # what a reply goes to: phone, Telegram user id or email address
    name: str = ""
    phone: str = ""  # E.164
    email: str = ""
    telegram_user_id: int | None = None
    telegram_username: str = ""


@dataclass(frozen=True)
class IngestResult:
    message: Message
    conversation: Conversation
    created: bool  # False: this external message was already stored


def _source_is_live(source) -> bool:
    if not source.is_active:
        return False
    return getattr(source, "status", None) != WhatsAppNumber.Status.DELETING


# ---------------------------------------------------------------- inbound


def ingest_inbound(
    source,
    external_thread_id: str,
    external_message_id: str,
    sender: Sender,
    body: str,
    *,
    subject: str = "",
    received_at: datetime | None = None,
    metadata: dict | None = None,
) -> IngestResult:
    """Store one incoming message, exactly once.

    Idempotent by construction: the message insert is `ON CONFLICT DO NOTHING` on
    (conversation, external id), so the same message ingested twice (a retry, a duplicate
    webhook, two workers at once) yields one row and one set of events.
    """
    platform = PLATFORM_BY_SOURCE[type(source)]
    if not _source_is_live(source):
        raise SourceInactive(f"{platform} source {source.pk} is not active")
    received_at = received_at or timezone.now()
    external_thread_id = str(external_thread_id)
    with transaction.atomic():
        client = _upsert_client(source.company_id, sender)
        conversation = _upsert_conversation(
            source, platform, external_thread_id, client, subject, received_at
        )
        message = Message(
            conversation=conversation,
            direction=Message.Direction.INBOUND,
            external_id=str(external_message_id),
            sender_name=sender.name[:200],
            sender_address=sender.address[:255],
            body=body,
            status=Message.Status.RECEIVED,
            metadata=metadata or {},
        )
        if not insert_unless_conflict(message):
            existing = Message.objects.get(
                conversation=conversation, external_id=message.external_id
            )
            logger.info("ingest: duplicate %s message conversation=%s", platform, conversation.pk)
            return IngestResult(existing, conversation, created=False)
        conversation = _bump_conversation(conversation.pk, body, received_at, inbound=True)
        events.publish("message.created", message_payload(message), company_id=source.company_id)
        events.publish(
            "conversation.updated", conversation_payload(conversation), company_id=source.company_id
        )
        transaction.on_commit(
            lambda: inbound_message_stored.send(
                sender=Message,
                message_id=message.pk,
                conversation_id=conversation.pk,
                company_id=source.company_id,
                platform=platform,
            )
        )
    logger.info(
        "ingest: stored %s message=%s conversation=%s source=%s",
        platform,
        message.pk,
        conversation.pk,
        source.pk,
    )
    return IngestResult(message, conversation, created=True)


CLIENT_IDENTITIES = ("telegram_user_id", "phone", "email")


def _upsert_client(company_id: int, sender: Sender) -> Client | None:
    """Find the client by Telegram id, phone or email (in that order), or create them."""
    identity = {
        "telegram_user_id": sender.telegram_user_id,
        "phone": sender.phone,
        "email": sender.email.strip().lower(),
    }
    identity = {key: value for key, value in identity.items() if value not in (None, "")}
    if not identity:
        return None
    for key in CLIENT_IDENTITIES:
        if key in identity:
            client = Client.objects.filter(company_id=company_id, **{key: identity[key]}).first()
            if client is not None:
                return client
    client = Client(
        company_id=company_id,
        name=sender.name[:200],
        telegram_username=sender.telegram_username[:64],
        **identity,
    )
    if insert_unless_conflict(client):
        return client
    # Someone created them at the same moment: read theirs.
    key = next(key for key in CLIENT_IDENTITIES if key in identity)
    return Client.objects.filter(company_id=company_id, **{key: identity[key]}).first()


def _upsert_conversation(
    source, platform, external_thread_id, client, subject, received_at
) -> Conversation:
    source_field = SOURCE_FIELD_BY_PLATFORM[platform]
    lookup = {source_field: source, "external_thread_id": external_thread_id}
    conversation = Conversation.objects.filter(**lookup).first()
    if conversation is not None:
        return conversation
    conversation = Conversation(
        company_id=source.company_id,
        platform=platform,
        client=client,
        subject=subject[:500],
        last_message_at=received_at,
        **lookup,
    )
    if not insert_unless_conflict(conversation):
        conversation = Conversation.objects.get(**lookup)
    return conversation


def _bump_conversation(conversation_id: int, body: str, at: datetime, *, inbound: bool):
    """Move last-message time/preview forward (never back) and count unread inbound messages."""
    preview = Value(body[:PREVIEW_LENGTH])
    changes = {
        "last_message_at": Greatest(F("last_message_at"), Value(at)),
        "last_message_preview": Case(
            When(last_message_at__lte=at, then=preview),
            default=F("last_message_preview"),
        ),
        "updated_at": timezone.now(),
    }
    if inbound:
        changes["unread_count"] = F("unread_count") + 1
        changes["status"] = Value(Conversation.Status.OPEN)  # a new message reopens it
    Conversation.objects.filter(pk=conversation_id).update(**changes)
    return Conversation.objects.get(pk=conversation_id)


# ---------------------------------------------------------------- outbound


def validate_body(platform: str, body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["Write a message first."]})
    limit = settings.MESSAGE_MAX_LENGTH.get(platform, 4096)
    if len(body) > limit:
        raise ValidationError(
            {"body": [f"At most {limit} characters on {platform} ({len(body)} given)."]}
        )
    return body


def send_message(conversation: Conversation, author, body: str, *, bot=None) -> Message:
    """Store an outbound message as `queued` and hand it to the sender after commit."""
    from ..tasks import deliver_message

    body = validate_body(conversation.platform, body)
    source = conversation.source
    if source is None or not _source_is_live(source):
        raise ValidationError(
            {"conversation": ["This conversation's channel is deactivated; it cannot send."]}
        )
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            author=author,
            bot=bot,
            sender_name=bot.name if bot else (author.display_name if author else ""),
            body=body,
            status=Message.Status.QUEUED,
        )
        conversation = _bump_conversation(conversation.pk, body, message.created_at, inbound=False)
        events.publish(
            "message.created", message_payload(message), company_id=conversation.company_id
        )
        events.publish(
            "conversation.updated",
            conversation_payload(conversation),
            company_id=conversation.company_id,
        )
        transaction.on_commit(lambda: deliver_message.delay(message.pk))
    logger.info("outbound: queued message=%s conversation=%s", message.pk, conversation.pk)
    return message


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
        message = Message.objects.select_for_update().filter(pk=message_id).first()
        if message is None or message.direction != Message.Direction.OUTBOUND:
            return False
        if status == Message.Status.FAILED:
            moves_forward = message.status in (Message.Status.QUEUED, Message.Status.SENT)
        else:
            moves_forward = STATUS_RANK[status] > STATUS_RANK.get(message.status, 0)
        if not moves_forward:
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
        company_id = Conversation.objects.filter(pk=message.conversation_id).values_list(
            "company_id", flat=True
        )[0]
        events.publish("message.updated", message_payload(message), company_id=company_id)
    logger.info("outbound: message=%s status=%s", message.pk, status)
    return True


# ---------------------------------------------------------------- agents' actions


def _save_and_publish(
    conversation: Conversation, fields: list[str], event: str = "conversation.updated"
):
    with transaction.atomic():
        conversation.save(update_fields=[*fields, "updated_at"])
        events.publish(
            event, conversation_payload(conversation), company_id=conversation.company_id
        )
    return conversation


def assign_conversation(actor, conversation: Conversation, assignee) -> Conversation:
    if assignee is not None and assignee.company_id != conversation.company_id:
        raise ValidationError({"assignee": ["Choose a member of your company."]})
    conversation.assignee = assignee
    logger.info(
        "conversation=%s assigned to=%s by=%s",
        conversation.pk,
        getattr(assignee, "pk", None),
        actor.pk,
    )
    return _save_and_publish(conversation, ["assignee"], "conversation.assigned")


def set_conversation_status(actor, conversation: Conversation, status: str) -> Conversation:
    if status not in Conversation.Status.values:
        raise ValidationError(
            {"status": [f"Must be one of: {', '.join(Conversation.Status.values)}."]}
        )
    conversation.status = status
    return _save_and_publish(conversation, ["status"])


def mark_conversation_read(actor, conversation: Conversation) -> Conversation:
    if conversation.unread_count == 0:
        return conversation
    conversation.unread_count = 0
    return _save_and_publish(conversation, ["unread_count"])
