"""Telethon's client at the narrowest boundary (Telegram's servers are unreachable here):
FakeTelegramClient has exactly the methods our code calls, records every call, and lets a test
deliver Telethon-shaped events to the handlers our listener registered. Errors are Telethon's
own classes (telethon.errors). Everything from our handlers inward is real.

Configure through FakeTelegramClient.script (reset by the fixture):
  authorized      is_user_authorized() answers this
  connect_error   connect() raises it
  send_errors     exceptions send_message() raises, one per call, before it succeeds
  sign_in_errors  exceptions sign_in() raises, one per call
  missed          events delivered during catch_up() (what arrived while disconnected)
"""

import asyncio
import hashlib
import itertools
import os
from datetime import UTC, datetime
from types import SimpleNamespace

_ids = itertools.count(5000)


def _live(op: str, client) -> None:
    """In a host process started by a test (FAKE_TELEGRAM_LIVE_KEY): record the open
    connections in a Redis set, "<pid>:<api session>", so the test sees every one anywhere."""
    key = os.environ.get("FAKE_TELEGRAM_LIVE_KEY")
    if key:
        from crm import coordination

        coordination.redis_client().execute_command(
            op.upper(), key, f"{os.getpid()}:{client.session.value}"
        )


class FakeSession:
    def __init__(self, value: str):
        self.value = value or "fresh-session"

    def save(self) -> str:
        return self.value


class FakeTelegramClient:
    script: dict = {}
    instances: list["FakeTelegramClient"] = []

    @classmethod
    def reset(cls):
        cls.instances = []
        cls.media = {}
        cls.script = {
            "authorized": True,
            "connect_error": None,
            "send_errors": [],
            "sign_in_errors": [],
            "missed": [],
        }

    def __init__(self, session_string: str, api_id: int, api_hash: str):
        self.session = FakeSession(session_string)
        self.api_id, self.api_hash = api_id, api_hash
        self.calls: list[tuple] = []
        self.handlers: list[tuple] = []
        self.sent: list[tuple] = []
        self.sent_detail: list[dict] = []
        self.loop = None
        self._connected = False
        FakeTelegramClient.instances.append(self)

    # -- what our code calls

    def add_event_handler(self, callback, builder):
        self.handlers.append((type(builder).__name__, callback))

    async def connect(self):
        self.calls.append(("connect",))
        self.loop = asyncio.get_running_loop()
        if self.script.get("connect_error"):
            raise self.script["connect_error"]
        self._connected = True
        _live("sadd", self)

    def is_connected(self) -> bool:
        return self._connected

    async def is_user_authorized(self) -> bool:
        self.calls.append(("is_user_authorized",))
        return self.script.get("authorized", True)

    async def catch_up(self):
        self.calls.append(("catch_up",))
        for kind, event in self.script.get("missed", []):
            await self._dispatch(kind, event)

    async def disconnect(self):
        self.calls.append(("disconnect",))
        self._connected = False
        _live("srem", self)

    async def send_message(self, peer, body, reply_to=None):
        self.calls.append(("send_message", peer, body))
        if self.script.get("send_errors"):
            raise self.script["send_errors"].pop(0)
        self.sent.append((peer, body))
        self.sent_detail.append({"peer": peer, "body": body, "reply_to": reply_to})
        return SimpleNamespace(id=next(_ids))

    async def __call__(self, request):
        """A raw API request (SendReactionRequest): recorded, answered with nothing."""
        self.calls.append((type(request).__name__, request))
        return None

    async def send_file(self, peer, file, *, caption="", reply_to=None, **options):
        """What Telegram receives of a file: its bytes (read in parts from the path, as
        Telethon uploads), name, type and caption."""
        self.calls.append(("send_file", peer, caption))
        if self.script.get("send_errors"):
            raise self.script["send_errors"].pop(0)
        digest, size = hashlib.sha256(), 0
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(512 * 1024), b""):
                digest.update(chunk)
                size += len(chunk)
        names = [a.file_name for a in options.get("attributes") or [] if hasattr(a, "file_name")]
        self.sent.append((peer, caption))
        self.sent_detail.append(
            {
                "peer": peer,
                "body": caption,
                "reply_to": reply_to,
                "filename": names[0] if names else "",
                "mime_type": options.get("mime_type"),
                "force_document": options.get("force_document", False),
                "size": size,
                "sha256": digest.hexdigest(),
            }
        )
        return SimpleNamespace(id=next(_ids))

    # What Telegram's servers hold for download_media, by message id: bytes or an exception.
    media: dict = {}

    async def get_messages(self, peer, ids=None):
        self.calls.append(("get_messages", peer, ids))
        if ids not in FakeTelegramClient.media:
            return None
        return SimpleNamespace(id=ids, media=True)

    async def download_media(self, message, file):
        self.calls.append(("download_media", getattr(message, "id", message)))
        content = FakeTelegramClient.media.get(getattr(message, "id", message))
        if content is None:
            raise ValueError("The media is not available (FILE_REFERENCE_EXPIRED)")
        if isinstance(content, Exception):
            raise content
        with open(file, "wb") as handle:
            handle.write(content)
        return file

    async def send_code_request(self, phone):
        self.calls.append(("send_code_request", phone))
        if self.script.get("sign_in_errors"):
            raise self.script["sign_in_errors"].pop(0)
        self.session.value = "half-done-session"
        return SimpleNamespace(phone_code_hash="0123abcd")

    async def sign_in(self, phone=None, code=None, phone_code_hash=None, password=None):
        self.calls.append(("sign_in", phone, code, phone_code_hash, password))
        if self.script.get("sign_in_errors"):
            raise self.script["sign_in_errors"].pop(0)
        self.session.value = "1BQANOTEuMTA4LjU2LjE5MAG7authorised-session"
        return SimpleNamespace(id=777)

    # -- what Telegram would do

    async def _dispatch(self, kind: str, event):
        for name, callback in self.handlers:
            if name == kind:
                await callback(event)

    def deliver(self, kind: str, event, timeout: float = 10.0):
        """Deliver an event to our handlers, on the listener's own event loop."""
        asyncio.run_coroutine_threadsafe(self._dispatch(kind, event), self.loop).result(timeout)

    def drop(self):
        """The connection breaks (network, server restart)."""
        self._connected = False


def user(user_id=424242, username="maria_l", phone="4915112345678", first="Maria", last="Lopez"):
    return SimpleNamespace(
        id=user_id, username=username, phone=phone, first_name=first, last_name=last, bot=False
    )


def new_message(message_id, text, sender=None, *, private=True, media=None):
    """A telethon.events.NewMessage.Event as our handler reads it."""
    sender = sender or user()
    message = SimpleNamespace(
        id=message_id,
        message=text,
        date=datetime.now(tz=UTC),
        media=media,
        file=getattr(media, "file", None),
        photo=getattr(media, "photo", None),
        voice=getattr(media, "voice", None),
        document=getattr(media, "document", None),
    )

    async def get_sender():
        return sender

    return SimpleNamespace(
        is_private=private, chat_id=sender.id, message=message, get_sender=get_sender
    )


def edited(message_id, text, sender=None):
    sender = sender or user()
    return SimpleNamespace(
        is_private=True,
        chat_id=sender.id,
        message=SimpleNamespace(id=message_id, message=text),
    )


def deleted(*message_ids):
    return SimpleNamespace(deleted_ids=list(message_ids), chat_id=None)


def photo(name="lid.jpg", size=48213):
    return SimpleNamespace(
        photo=True, file=SimpleNamespace(name=name, mime_type="image/jpeg", size=size)
    )
