"""Telethon's message events, turned into inbox writes: new private messages through
ingest_inbound (the one door in), edits and deletions reflected on the stored rows."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from messaging import rich
from messaging.services import Sender, ingest_inbound
from messaging.services.attachments import IncomingAttachment
from messaging.services.inbox import mark_inbound_deleted, record_inbound_edit
from messaging.services.reactions import record_customer_reaction

from ..models import TelegramAccount

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelegramInbound:
    message_id: int
    peer_id: int  # the private chat's peer: the sender's user id
    text: str
    date: datetime
    user_id: int
    username: str = ""
    phone: str = ""
    name: str = ""
    media: list[IncomingAttachment] = field(default_factory=list)
    content: dict | None = None  # typed content (messaging.rich): location, contacts


MEDIA_KINDS = {
    "photo": "image",
    "video": "video",
    "voice": "voice",
    "audio": "audio",
    "sticker": "sticker",
    "document": "document",
}


def _media_of(message) -> list[IncomingAttachment]:
    """The attachment a Telethon message carries, described (not downloaded)."""
    if not getattr(message, "media", None):
        return []
    file = getattr(message, "file", None)
    kind = "other"
    for attribute, ours in MEDIA_KINDS.items():
        if getattr(message, attribute, None):
            kind = ours
            break
    return [
        IncomingAttachment(
            kind=kind,
            filename=(getattr(file, "name", None) or "") if file else "",
            content_type=(getattr(file, "mime_type", None) or "") if file else "",
            size=getattr(file, "size", None) if file else None,
            external_id=str(getattr(message, "id", "")),
        )
    ]


def _content_of(message) -> dict | None:
    """A shared location (geo point or venue) or contact as messaging.rich content."""
    venue = getattr(message, "venue", None)
    geo = getattr(venue, "geo", None) or getattr(message, "geo", None)
    latitude, longitude = getattr(geo, "lat", None), getattr(geo, "long", None)
    if isinstance(latitude, int | float) and isinstance(longitude, int | float):
        return {
            "kind": "location",
            "latitude": float(latitude),
            "longitude": float(longitude),
            "name": (getattr(venue, "title", "") or "")[:200],
            "address": (getattr(venue, "address", "") or "")[:500],
        }
    contact = getattr(message, "contact", None)
    if contact is not None:
        first = getattr(contact, "first_name", "") or ""
        last = getattr(contact, "last_name", "") or ""
        phone = getattr(contact, "phone_number", "") or ""
        return {
            "kind": "contacts",
            "contacts": [
                {
                    "name": f"{first} {last}".strip()[:200],
                    "phones": [f"+{phone.lstrip('+')}"[:40]] if phone else [],
                    "emails": [],
                }
            ],
        }
    return None


def from_event(message, sender) -> TelegramInbound:
    """Plain data from a Telethon Message and its sender (a telethon.tl.types.User)."""
    first = getattr(sender, "first_name", None) or ""
    last = getattr(sender, "last_name", None) or ""
    phone = getattr(sender, "phone", None) or ""
    date = getattr(message, "date", None) or datetime.now(tz=UTC)
    content = _content_of(message)
    return TelegramInbound(
        message_id=message.id,
        peer_id=sender.id,
        text=(getattr(message, "message", None) or "") or rich.describe(content),
        date=date if date.tzinfo else date.replace(tzinfo=UTC),
        user_id=sender.id,
        username=getattr(sender, "username", None) or "",
        phone=f"+{phone.lstrip('+')}" if phone else "",
        name=f"{first} {last}".strip(),
        media=[] if content else _media_of(message),
        content=content,
    )


def ingest_telegram(account: TelegramAccount, item: TelegramInbound) -> bool:
    """Store one private message once (a catch-up replay stores nothing). True when new."""
    with transaction.atomic():
        result = ingest_inbound(
            account,
            external_thread_id=str(item.peer_id),
            external_message_id=str(item.message_id),
            sender=Sender(
                address=str(item.user_id),
                name=item.name or item.username,
                phone=item.phone,
                telegram_user_id=item.user_id,
                telegram_username=item.username,
            ),
            body=item.text,
            received_at=item.date,
            metadata={"content": item.content} if item.content else None,
            attachments=item.media,
        )
        if result.created:
            TelegramAccount.objects.filter(pk=account.pk).update(
                messages_received=F("messages_received") + 1, last_event_at=timezone.now()
            )
    return result.created


def apply_edit(account: TelegramAccount, peer_id: int, message_id: int, text: str) -> bool:
    return record_inbound_edit(account, str(peer_id), str(message_id), text)


def apply_deletion(account: TelegramAccount, message_ids: list[int]) -> int:
    return mark_inbound_deleted(account, [str(message_id) for message_id in message_ids])


def customer_reaction(update) -> tuple[int, int, str] | None:
    """(peer id, message id, emoji; "" when removed) of a Telethon UpdateMessageReactions in a
    private chat: the reaction of the chat's user among its recent reactions. None otherwise."""
    peer_id = getattr(getattr(update, "peer", None), "user_id", None)
    message_id = getattr(update, "msg_id", None)
    if not isinstance(peer_id, int) or not isinstance(message_id, int):
        return None
    emoji = ""
    reactions = getattr(update, "reactions", None)
    for recent in getattr(reactions, "recent_reactions", None) or ():
        if getattr(getattr(recent, "peer_id", None), "user_id", None) == peer_id:
            emoji = getattr(getattr(recent, "reaction", None), "emoticon", "") or ""
    return peer_id, message_id, emoji


def apply_reaction(account: TelegramAccount, peer_id: int, message_id: int, emoji: str) -> bool:
    return record_customer_reaction(account, str(peer_id), str(message_id), emoji)
