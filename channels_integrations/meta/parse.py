"""A Messenger Platform webhook delivery (Messenger and Instagram alike) read into plain
events: messages (text, attachments, quick replies, postbacks, story replies and mentions),
reactions, and read/delivery receipts. Echoes of our own messages are dropped. Whatever has
another shape than Meta's documented one is skipped and logged, never an error: Meta
re-delivers a webhook that did not get a 2xx."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

logger = logging.getLogger(__name__)

MEDIA_KINDS = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
ID_LIMIT = 255


@dataclass(frozen=True)
class InboundAttachment:
    kind: str  # image, video, audio, file, story_mention, share, ig_reel, fallback, ...
    url: str = ""
    title: str = ""


@dataclass(frozen=True)
class Inbound:
    mid: str
    sender_id: str
    timestamp: datetime
    kind: str  # text, attachments, quick_reply, postback, story_reply, story_mention
    body: str
    attachments: list[InboundAttachment] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reaction:
    sender_id: str
    mid: str  # the message reacted to
    action: str  # react / unreact
    emoji: str
    timestamp: datetime


@dataclass(frozen=True)
class Receipt:
    sender_id: str
    status: str  # delivered / read
    mids: list[str]
    watermark: datetime | None


@dataclass
class Delivery:
    messages: list[Inbound] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    skipped: int = 0  # events of another shape, another account's, echoes


def _objects(value) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value, limit: int | None = None) -> str:
    """A string field as we store it: text only, no NUL (PostgreSQL stores none)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = value.replace("\x00", "") if isinstance(value, str) else ""
    return text[:limit] if limit else text


def _id(value) -> str:
    text = _text(value)
    return text if 0 < len(text) <= ID_LIMIT and text.strip() == text else ""


def _time(millis) -> datetime:
    try:
        return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)


def _time_or_none(millis) -> datetime | None:
    if isinstance(millis, bool) or not isinstance(millis, int | str):
        return None
    try:
        return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse(payload, own_ids: set[str]) -> Delivery:
    """The events of one delivery addressed to one of `own_ids` (the Page id, and the
    Instagram account id for Instagram); events for another account are skipped."""
    delivery = Delivery()
    for entry in _objects(_object(payload).get("entry")):
        entry_id = _text(entry.get("id"))
        if entry_id and entry_id not in own_ids:
            logger.warning("meta webhook: an entry for another account skipped")
            delivery.skipped += 1
            continue
        for event in _objects(entry.get("messaging")):
            try:
                _event(event, own_ids, delivery)
            except (TypeError, ValueError, AttributeError):  # a shape we did not foresee
                logger.warning("meta webhook: an event of an unexpected shape skipped")
                delivery.skipped += 1
    return delivery


def _event(event: dict, own_ids: set[str], delivery: Delivery) -> None:
    sender = _id(_object(event.get("sender")).get("id"))
    when = _time(event.get("timestamp"))
    if not sender or sender in own_ids:
        delivery.skipped += 1  # our own page (echoes, our receipts) or no sender
        return
    if "message" in event:
        message = _object(event.get("message"))
        if message.get("is_echo") is True:
            delivery.skipped += 1  # our own message, sent by us or another app of the page
            return
        if message.get("is_deleted") is True or message.get("is_unsupported") is True:
            delivery.skipped += 1
            return
        if parsed := _message(message, sender, when):
            delivery.messages.append(parsed)
        else:
            delivery.skipped += 1
    elif "postback" in event:
        if parsed := _postback(_object(event.get("postback")), sender, when):
            delivery.messages.append(parsed)
        else:
            delivery.skipped += 1
    elif "reaction" in event:
        reaction = _object(event.get("reaction"))
        mid = _id(reaction.get("mid"))
        action = _text(reaction.get("action"))
        if mid and action in ("react", "unreact"):
            emoji = _text(reaction.get("emoji"), 32) or _text(reaction.get("reaction"), 32)
            delivery.reactions.append(Reaction(sender, mid, action, emoji, when))
        else:
            delivery.skipped += 1
    elif "read" in event or "delivery" in event:
        status = "read" if "read" in event else "delivered"
        part = _object(event.get("read") if status == "read" else event.get("delivery"))
        mids = (
            [mid for mid in map(_id, part.get("mids") or []) if mid]
            if isinstance(part.get("mids"), list)
            else []
        )
        if mid := _id(part.get("mid")):
            mids.append(mid)
        watermark = _time_or_none(part.get("watermark"))
        if mids or watermark:
            delivery.receipts.append(Receipt(sender, status, mids[:100], watermark))
        else:
            delivery.skipped += 1
    else:
        delivery.skipped += 1


def _message(message: dict, sender: str, when: datetime) -> Inbound | None:
    mid = _id(message.get("mid"))
    if not mid:
        logger.warning("meta webhook: a message without a usable mid skipped")
        return None
    body = _text(message.get("text")).strip()
    metadata: dict = {}
    kind = "text"
    attachments = []
    for item in _objects(message.get("attachments")):
        payload = _object(item.get("payload"))
        attachments.append(
            InboundAttachment(
                kind=_text(item.get("type"), 40) or "fallback",
                url=_text(payload.get("url"), 4000),
                title=_text(payload.get("title") or item.get("title"), 200),
            )
        )
    if attachments:
        kind = "attachments"
        metadata["attachments"] = [
            {"type": item.kind, "url": item.url, **({"title": item.title} if item.title else {})}
            for item in attachments
        ]
        if any(item.kind == "story_mention" for item in attachments):
            kind = "story_mention"
    quick_reply = _object(message.get("quick_reply"))
    if quick_reply:
        kind = "quick_reply"
        metadata["quick_reply"] = {"payload": _text(quick_reply.get("payload"), 1000)}
    reply_to = _object(message.get("reply_to"))
    story = _object(reply_to.get("story"))
    if story:
        kind = "story_reply"
        metadata["story"] = {
            "url": _text(story.get("url"), 4000),
            "id": _text(story.get("id"), 255),
        }
    elif quoted := _id(reply_to.get("mid")):
        metadata["quoted"] = quoted
    if not body and not attachments:
        if not metadata:
            logger.warning("meta webhook: a message with nothing we can show skipped")
            return None
    return Inbound(mid, sender, when, kind, body, attachments, metadata)


def _postback(postback: dict, sender: str, when: datetime) -> Inbound | None:
    """A button the client pressed: shown as the button's title, its payload kept."""
    title = _text(postback.get("title"), 1000).strip()
    payload = _text(postback.get("payload"), 1000)
    mid = _id(postback.get("mid"))
    if not mid:  # older deliveries carry no mid: one per button press and moment
        if not (title or payload):
            return None
        mid = f"postback:{sender}:{int(when.timestamp() * 1000)}"[:ID_LIMIT]
    return Inbound(
        mid, sender, when, "postback", title or payload, [], {"postback": {"payload": payload}}
    )
