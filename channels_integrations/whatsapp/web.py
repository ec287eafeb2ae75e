"""The QR-linked WhatsApp Web connection, through neonize (whatsmeow).

This adapter is the narrowest boundary to WhatsApp's servers: it turns neonize's events into
calls on `SessionCallbacks` (implemented by sessions.SessionRunner) and our calls into
neonize's. Device keys live in PostgreSQL (neonize's whatsmeow_* tables), never in files.
Tests replace the adapter through settings.WHATSAPP_WEB_ADAPTER and drive the callbacks.
"""

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from messaging import rich
from messaging.channels import OutboundFile

from .cloud import keep_raw
from .types import AnnouncedMedia

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebInboundMessage:
    """One thing the customer did: a new message (`action` "message"), or a reaction,
    an edit or a deletion of the message `target` (its WhatsApp id)."""

    wamid: str
    phone: str  # the sender's number, digits only (the conversation's thread id)
    name: str
    body: str
    timestamp: datetime
    media: list[AnnouncedMedia] = field(default_factory=list)
    action: str = "message"  # message, reaction, edit, revoke
    target: str = ""  # reaction/edit/revoke: the message it is about
    emoji: str = ""  # reaction: empty when removed
    content: dict | None = None  # typed content (messaging.rich): location, contacts
    raw: dict = field(default_factory=dict)  # the message protobuf as JSON (bounded, NUL-free)


@dataclass(frozen=True)
class WebReceipt:
    """The customer's phone reports on messages we sent: delivered, or read (a voice note
    played counts as read). `wamids`: the WhatsApp ids of our sends it is about."""

    wamids: list[str]
    status: str  # messaging's words: delivered, read


class SessionCallbacks(Protocol):
    def on_qr(self, code: str) -> None: ...
    def on_paired(self, jid: str) -> None: ...
    def on_connected(self) -> None: ...
    def on_logged_out(self, reason: str) -> None: ...
    def on_replaced(self) -> None: ...
    def on_message(self, message: WebInboundMessage) -> None: ...
    def on_receipt(self, receipt: WebReceipt) -> None: ...


class WebAdapter(Protocol):
    def __init__(self, number_id: int, jid: str, callbacks: SessionCallbacks): ...
    def connect(self) -> None:
        """Block until stop() or a failure (raised)."""

    def stop(self) -> None: ...
    def is_connected(self) -> bool: ...
    def send_text(self, to_phone: str, body: str, *, quoted: str = "") -> str:
        """Send; returns WhatsApp's message id. `quoted`: the id of a message to reply to."""

    def send_file(
        self, to_phone: str, file: OutboundFile, *, caption: str = "", quoted: str = ""
    ) -> str:
        """Send one stored file as an image, video, audio or document message."""

    def download(self, media: dict, path: str) -> None:
        """Fetch an announced inbound file (its `media` description) into `path`."""

    def send_reaction(self, to_phone: str, message_id: str, emoji: str) -> str:
        """React to the customer's message `message_id` (empty emoji: remove ours)."""

    def logout(self) -> None: ...


def store_url() -> str:
    """neonize's PostgreSQL URL: WHATSAPP_STORE_URL, else our own database."""
    if settings.WHATSAPP_STORE_URL:
        return settings.WHATSAPP_STORE_URL
    db = connection.settings_dict
    auth = quote(db["USER"] or "postgres", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}?sslmode=disable"


def forget_device(jid: str) -> None:
    """Delete a paired device's keys from neonize's tables (they cascade from
    whatsmeow_device), when they live in our database; call inside the caller's transaction."""
    if not jid or settings.WHATSAPP_STORE_URL:
        return  # nothing paired, or another database that we do not touch
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('whatsmeow_device') IS NOT NULL")
        if cursor.fetchone()[0]:
            cursor.execute("DELETE FROM whatsmeow_device WHERE jid = %s", [jid])
            logger.info("whatsapp web: device keys removed")


class NeonizeAdapter:
    def __init__(self, number_id: int, jid: str, callbacks: SessionCallbacks):
        from neonize.client import NewClient
        from neonize.events import (
            ConnectedEv,
            LoggedOutEv,
            MessageEv,
            PairStatusEv,
            ReceiptEv,
            StreamReplacedEv,
        )
        from neonize.utils.jid import build_jid

        self.callbacks = callbacks
        options = {"uuid": f"number-{number_id}"}
        if jid:
            address, _, server = jid.partition("@")
            user, _, device = address.partition(":")
            options["jid"] = build_jid(user, server or "s.whatsapp.net")
            if device.isdigit():
                options["jid"].Device = int(device)
        else:
            options["new_device"] = True  # pair a fresh device: the QR flow
        self.client = NewClient(store_url(), **options)
        client_events = self.client.event
        client_events.qr(lambda _client, data: callbacks.on_qr(data.decode()))
        client_events(ConnectedEv)(lambda _client, _event: callbacks.on_connected())
        client_events(PairStatusEv)(self._on_pair_status)
        client_events(LoggedOutEv)(
            lambda _client, event: callbacks.on_logged_out(f"logged out (reason {event.Reason})")
        )
        client_events(StreamReplacedEv)(lambda _client, _event: callbacks.on_replaced())
        client_events(MessageEv)(self._on_message)
        client_events(ReceiptEv)(self._on_receipt)

    def _on_pair_status(self, _client, event):
        if event.Error:
            logger.warning("whatsapp web: pairing failed")
            return
        device = f":{event.ID.Device}" if event.ID.Device else ""
        self.callbacks.on_paired(f"{event.ID.User}{device}@{event.ID.Server}")

    def _on_message(self, _client, event):
        source = event.Info.MessageSource
        if source.IsFromMe or source.IsGroup:
            return  # our own echoes and group chats are not inbox conversations
        parsed = message_from_event(event)
        if parsed is not None:
            self.callbacks.on_message(parsed)

    def _on_receipt(self, _client, event):
        receipt = receipt_from_event(event)
        if receipt is not None:
            self.callbacks.on_receipt(receipt)

    def connect(self) -> None:
        self.client.connect()

    def stop(self) -> None:
        try:
            self.client.stop()
        except Exception:  # already stopped: nothing to cancel
            logger.debug("whatsapp web: stop of a stopped client")

    def is_connected(self) -> bool:
        try:
            return bool(self.client.is_connected)
        except Exception:
            return False

    def _context(self, to_phone: str, quoted: str):
        """neonize's ContextInfo of a reply to the message `quoted` (by its id) of this chat."""
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, Message

        return ContextInfo(
            stanzaID=quoted,
            participant=f"{to_phone.lstrip('+')}@s.whatsapp.net",
            quotedMessage=Message(conversation=""),
        )

    def send_text(self, to_phone: str, body: str, *, quoted: str = "") -> str:
        if not quoted:
            return self.client.send_message(to_phone.lstrip("+"), body).ID
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ExtendedTextMessage, Message

        message = Message(
            extendedTextMessage=ExtendedTextMessage(
                text=body, contextInfo=self._context(to_phone, quoted)
            )
        )
        return self.client.send_message(to_phone.lstrip("+"), message).ID

    def send_file(
        self, to_phone: str, file: OutboundFile, *, caption: str = "", quoted: str = ""
    ) -> str:
        # whatsmeow encrypts a file whole before its upload: neonize takes the stored file's
        # path (no copy in Python), the Go side holds it while it encrypts.
        from django.core.files.storage import default_storage

        path = default_storage.path(file.storage_name)
        build = {
            "image": lambda: self.client.build_image_message(path, caption=caption or None),
            "video": lambda: self.client.build_video_message(path, caption=caption or None),
            "audio": lambda: self.client.build_audio_message(path, ptt=True),
        }.get(file.kind) or (
            lambda: self.client.build_document_message(
                path,
                caption=caption or None,
                filename=file.filename,
                mimetype=file.content_type,
            )
        )
        message = build()
        if quoted:
            for field_name in MEDIA_FIELDS:
                if message.HasField(field_name):
                    getattr(message, field_name).contextInfo.CopyFrom(
                        self._context(to_phone, quoted)
                    )
        return self.client.send_message(to_phone.lstrip("+"), message).ID

    def download(self, media: dict, path: str) -> None:
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        self.client.download_any(Message.FromString(base64.b64decode(media["message"])), path)

    def send_reaction(self, to_phone: str, message_id: str, emoji: str) -> str:
        from neonize.utils.jid import build_jid

        chat = build_jid(to_phone.lstrip("+"))
        reaction = self.client.build_reaction(chat, chat, message_id, emoji)
        return self.client.send_message(chat, reaction).ID

    def logout(self) -> None:
        self.client.logout()


MEDIA_FIELDS = {
    "imageMessage": "image",
    "videoMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}


PROTOCOL_REVOKE, PROTOCOL_EDIT = 0, 14  # ProtocolMessage.Type REVOKE, MESSAGE_EDIT


def _has(part, name: str) -> bool:
    try:
        return part.HasField(name)
    except ValueError:  # not a field of this message type
        return False


def _plain(text) -> str:
    return str(text or "").replace("\x00", "")


# neonize's Receipt.ReceiptType: what a customer's phone reports about our sends. Others
# (our own devices' reads, retries, server errors, history syncs) say nothing about delivery.
RECEIPT_STATUS = {1: "delivered", 4: "read", 6: "read"}  # DELIVERED, READ, PLAYED


def receipt_from_event(event) -> WebReceipt | None:
    """Our view of a neonize ReceiptEv: a customer's delivery or read report on our sends;
    None for anything else (a group's, our own devices', other types)."""
    source = event.MessageSource
    status = RECEIPT_STATUS.get(event.Type)
    if status is None or source.IsFromMe or source.IsGroup or not event.MessageIDs:
        return None
    return WebReceipt(wamids=[str(wamid) for wamid in event.MessageIDs], status=status)


def message_from_event(event) -> WebInboundMessage | None:
    """Our plain view of a neonize MessageEv: text, captions and media announced; locations
    and contact cards as typed content; reactions, edits and deletions ("revoke") of earlier
    messages as actions on them. Anything else (receipts, key shares, ...) is None."""
    content = event.Message
    sender = event.Info.MessageSource.Sender
    common = {
        "wamid": event.Info.ID,
        "phone": sender.User,
        "name": event.Info.Pushname,
        "timestamp": _time(event.Info.Timestamp),
    }
    if _has(content, "editedMessage"):  # newer clients wrap an edit's protocol message
        content = content.editedMessage.message
    if _has(content, "reactionMessage"):
        reaction = content.reactionMessage
        if not reaction.key.ID:
            return None
        return WebInboundMessage(
            body="",
            action="reaction",
            target=reaction.key.ID,
            emoji=_plain(reaction.text)[:32],
            **common,
        )
    if _has(content, "protocolMessage"):
        protocol = content.protocolMessage
        if not protocol.key.ID:
            return None
        if protocol.type == PROTOCOL_REVOKE:
            return WebInboundMessage(body="", action="revoke", target=protocol.key.ID, **common)
        if protocol.type == PROTOCOL_EDIT:
            edited = protocol.editedMessage
            body = edited.conversation or edited.extendedTextMessage.text
            for field_name in MEDIA_FIELDS:
                if not body and _has(edited, field_name):
                    body = getattr(getattr(edited, field_name), "caption", "")
            return WebInboundMessage(
                body=_plain(body), action="edit", target=protocol.key.ID, **common
            )
        return None
    common["raw"] = _raw(content)
    typed = _typed_content(content)
    if typed is not None:
        return WebInboundMessage(body=rich.describe(typed), content=typed, **common)
    body = content.conversation or content.extendedTextMessage.text
    media = []
    for field_name, kind in MEDIA_FIELDS.items():
        if _has(content, field_name):
            part = getattr(content, field_name)
            body = body or getattr(part, "caption", "")
            if kind == "audio" and part.PTT:
                kind = "voice"
            media.append(
                AnnouncedMedia(
                    kind=kind,
                    content_type=part.mimetype,
                    filename=getattr(part, "fileName", ""),
                    size=getattr(part, "fileLength", None),
                    # whatsmeow downloads from the media message itself (keys, path, hashes).
                    ref={"message": _serialized_media(field_name, part)},
                )
            )
    if not body and not media:
        return None  # receipts, key shares and the like
    return WebInboundMessage(body=_plain(body), media=media, **common)


def _raw(content) -> dict:
    """The message as JSON for its metadata: binary fields (media keys) left out, bounded."""
    from google.protobuf.json_format import MessageToDict

    try:
        data = MessageToDict(content)
    except Exception:  # a message the JSON mapping cannot express: keep nothing of it
        return {}
    for part in data.values():
        if isinstance(part, dict):
            for key in [k for k in part if k.lower().endswith(("key", "sha256", "thumbnail"))]:
                del part[key]
    return keep_raw(data)


def _typed_content(content) -> dict | None:
    """A location or contact card(s) as messaging.rich content; None for anything else."""
    for field_name in ("locationMessage", "liveLocationMessage"):
        if _has(content, field_name):
            place = getattr(content, field_name)
            latitude, longitude = place.degreesLatitude, place.degreesLongitude
            if abs(latitude) > 90 or abs(longitude) > 180:
                return None
            return {
                "kind": "location",
                "latitude": latitude,
                "longitude": longitude,
                "name": _plain(getattr(place, "name", ""))[:200],
                "address": _plain(getattr(place, "address", ""))[:500],
            }
    if choice := _choice(content):
        return choice
    cards = []
    if _has(content, "contactMessage"):
        cards = [content.contactMessage]
    elif _has(content, "contactsArrayMessage"):
        cards = list(content.contactsArrayMessage.contacts)[:20]
    if cards:
        return {"kind": "contacts", "contacts": [_vcard(card) for card in cards]}
    return None


def _choice(content) -> dict | None:
    """A button or list reply (the client tapped one of our buttons or list rows) as a
    `choice`: what they saw as its title, our id of it as the payload."""
    if _has(content, "buttonsResponseMessage"):
        part = content.buttonsResponseMessage
        title, payload, description = part.selectedDisplayText, part.selectedButtonID, ""
    elif _has(content, "templateButtonReplyMessage"):
        part = content.templateButtonReplyMessage
        title, payload, description = part.selectedDisplayText, part.selectedID, ""
    elif _has(content, "listResponseMessage"):
        part = content.listResponseMessage
        title, description = part.title, part.description
        payload = part.singleSelectReply.selectedRowID
    elif _has(content, "interactiveResponseMessage"):
        part = content.interactiveResponseMessage
        title = part.body.text
        payload, description = part.nativeFlowResponseMessage.name, ""
    else:
        return None
    title = _plain(title)[:500]
    if not title and not payload:
        return None
    return {
        "kind": "choice",
        "title": title or _plain(payload)[:500],
        "description": _plain(description)[:500],
        "payload": _plain(payload)[:500],
    }


def _vcard(card) -> dict:
    """Name, phones and emails of a shared contact (its vCard's TEL and EMAIL lines)."""
    phones, emails = [], []
    for line in _plain(card.vcard).splitlines()[:200]:
        name, _, value = line.partition(":")
        key = name.split(";")[0].upper()
        if key == "TEL" and value.strip():
            phones.append(value.strip()[:40])
        elif key == "EMAIL" and value.strip():
            emails.append(value.strip()[:254])
    return {"name": _plain(card.displayName)[:200], "phones": phones[:10], "emails": emails[:10]}


def _serialized_media(field_name: str, part) -> str:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    message = Message()
    getattr(message, field_name).CopyFrom(part)
    return base64.b64encode(message.SerializeToString()).decode()


def _time(stamp: int) -> datetime:
    if not stamp:
        return datetime.now(tz=UTC)
    if stamp > 10**11:  # milliseconds
        stamp /= 1000
    return datetime.fromtimestamp(stamp, tz=UTC)
