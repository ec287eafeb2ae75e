"""Attachments of inbound messages: always recorded (name, type, size), stored only within
settings.ATTACHMENT_MAX_BYTES; and their files removed once the rows are gone."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from ..models import Attachment, Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingAttachment:
    """A file as a channel hands it over. `content` None: announced, not downloaded."""

    kind: str = Attachment.Kind.OTHER
    filename: str = ""
    content_type: str = ""
    size: int | None = None
    content: bytes | None = None
    external_id: str = ""


def add_attachments(message: Message, incoming: list[IncomingAttachment]) -> list[Attachment]:
    """Record each attachment of `message`; store its content when within the size limit."""
    stored = []
    for item in incoming:
        size = len(item.content) if item.content is not None else item.size
        attachment = Attachment(
            message=message,
            conversation_id=message.conversation_id,
            kind=item.kind if item.kind in Attachment.Kind.values else Attachment.Kind.OTHER,
            filename=(item.filename or "")[:255],
            content_type=(item.content_type or "")[:255],
            size=size,
            external_id=(item.external_id or "")[:255],
        )
        if item.content is not None and size <= settings.ATTACHMENT_MAX_BYTES:
            attachment.file.save(
                item.filename or "attachment", ContentFile(item.content), save=False
            )
        elif item.content is not None:
            logger.info("attachment: %s bytes over the limit, recorded only", size)
        attachment.save()
        stored.append(attachment)
    return stored


def remove_stored_files(names: list[str]) -> None:
    """Remove attachment files whose rows were deleted (call after the delete commits)."""
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:  # a file already gone must not stop the rest
            logger.warning("attachment: could not remove a stored file")
