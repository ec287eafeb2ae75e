"""Plain data shared by the Cloud API and QR-linked adapters."""

from dataclasses import dataclass


@dataclass(frozen=True)
class AnnouncedMedia:
    """A file a WhatsApp message carries, as announced (not downloaded)."""

    kind: str  # image, video, audio, voice, document, sticker
    content_type: str = ""
    filename: str = ""
    size: int | None = None
    media_id: str = ""
    ref: dict | None = None  # QR-linked: what the session's adapter needs to download it
