"""A stand-in for neonize at the adapter boundary (channels_integrations.whatsapp.web): the
far end, WhatsApp's servers, is unreachable here. Everything from the adapter's callbacks
inward (SessionRunner, lease, PostgreSQL, Redis, Celery) is real.

Modes (FakeWebAdapter.mode in this process, FAKE_WHATSAPP_MODE in a worker process):
  "connect"  connects at once and stays connected until stopped
  "qr"       shows one QR code and waits (a scan is driven by the test: on_connected())
  "rotate"   shows QR codes one after another, like an unscanned pairing
  "fail"     fails to dial, like the real client without a route
A worker process also records its live connections in the Redis set FAKE_WHATSAPP_LIVE_KEY.
"""

import hashlib
import itertools
import os
import threading

import redis
from django.conf import settings

_codes = itertools.count(1)


class FakeWebAdapter:
    mode = "connect"
    instances: list["FakeWebAdapter"] = []

    def __init__(self, number_id: int, jid: str, callbacks):
        self.number_id = number_id
        self.jid = jid
        self.callbacks = callbacks
        self.connected = False
        self.logged_out = False
        self.sent: list[tuple[str, str]] = []
        self.reactions: list[tuple[str, str, str]] = []  # (to, message id, emoji)
        self.sent_detail: list[dict] = []
        self._stopped = threading.Event()
        FakeWebAdapter.instances.append(self)

    @property
    def _mode(self) -> str:
        return os.environ.get("FAKE_WHATSAPP_MODE") or FakeWebAdapter.mode

    def connect(self) -> None:
        mode = self._mode
        if mode == "fail":
            raise RuntimeError("failed to dial whatsapp web websocket: no such host")
        if mode == "connect":
            self.scan()
        elif mode == "qr":
            self.callbacks.on_qr(f"2@fake-qr-{next(_codes)},pubkey,identity,adv")
        elif mode == "rotate":
            while not self._stopped.is_set():
                self.callbacks.on_qr(f"2@fake-qr-{next(_codes)},pubkey,identity,adv")
                self._stopped.wait(0.05)
        live_key = os.environ.get("FAKE_WHATSAPP_LIVE_KEY")
        member = f"{os.getpid()}:{self.number_id}"
        if live_key and self.connected:
            _redis().sadd(live_key, member)
        self._stopped.wait()
        if live_key:
            _redis().srem(live_key, member)

    def scan(self) -> None:
        """What the phone does when the QR is scanned: paired, then connected."""
        self.connected = True
        self.callbacks.on_paired(f"49170{self.number_id:07d}@s.whatsapp.net")
        self.callbacks.on_connected()

    def stop(self) -> None:
        self.connected = False
        self._stopped.set()

    def is_connected(self) -> bool:
        return self.connected

    def send_text(self, to_phone: str, body: str, *, quoted: str = "") -> str:
        self.sent.append((to_phone, body))
        self.sent_detail.append({"to": to_phone, "body": body, "quoted": quoted})
        return f"wamid.web.{self.number_id}.{len(self.sent)}"

    def send_reaction(self, to_phone: str, message_id: str, emoji: str) -> str:
        self.reactions.append((to_phone, message_id, emoji))
        return f"wamid.web.{self.number_id}.reaction.{len(self.reactions)}"

    def send_file(self, to_phone: str, file, *, caption: str = "", quoted: str = "") -> str:
        """What WhatsApp receives of a file: its bytes (read from our storage, as whatsmeow
        does), kind, name and caption."""
        digest, size = hashlib.sha256(), 0
        with file.open() as handle:
            for chunk in iter(lambda: handle.read(65536), b""):
                digest.update(chunk)
                size += len(chunk)
        self.sent.append((to_phone, caption))
        self.sent_detail.append(
            {
                "to": to_phone,
                "body": caption,
                "quoted": quoted,
                "kind": file.kind,
                "filename": file.filename,
                "content_type": file.content_type,
                "size": size,
                "sha256": digest.hexdigest(),
            }
        )
        return f"wamid.web.{self.number_id}.{len(self.sent)}"

    # What WhatsApp's media servers hold, by the announced file's `media_id` (a test fills it):
    # bytes, or an exception the download raises.
    media: dict = {}

    def download(self, media: dict, path: str) -> None:
        content = FakeWebAdapter.media.get(media.get("media_id", ""))
        if content is None:
            raise RuntimeError("download failed: media not found (404)")
        if isinstance(content, Exception):
            raise content
        with open(path, "wb") as handle:
            handle.write(content)

    def logout(self) -> None:
        self.logged_out = True


def _redis():
    return redis.Redis.from_url(settings.REDIS_URL)
