"""Attachments: inbound ones always recorded (name, type, size), stored only within
settings.ATTACHMENT_MAX_BYTES; outgoing files checked against their channel's limits and
stored (streamed, chunk by chunk) with their queued message; files removed once the rows are
gone."""

import logging
import mimetypes
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.translation import gettext as _

from .. import channels
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
    download_ref: dict | None = None  # what the channel needs to fetch it (its own shape)


def add_attachments(message: Message, incoming: list[IncomingAttachment]) -> list[Attachment]:
    """Record each attachment of `message`; store its content when within the size limit.
    An announced one (no content, the channel's id) that the channel can fetch is `pending`
    and downloaded in the background after commit (messaging.services.downloads)."""
    from .downloads import queue_downloads

    stored = []
    fetcher = None
    if any(item.content is None and (item.external_id or item.download_ref) for item in incoming):
        conversation = message.conversation
        channel = channels.get(conversation.platform)
        source = conversation.source
        fetcher = channel if source is not None and channel.fetches_media(source) else None
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
            download_ref=item.download_ref or {},
        )
        if item.content is not None and size <= settings.ATTACHMENT_MAX_BYTES:
            attachment.file.save(
                item.filename or "attachment", ContentFile(item.content), save=False
            )
        elif item.content is not None:
            logger.info("attachment: %s bytes over the limit, recorded only", size)
        elif fetcher is not None and (item.external_id or item.download_ref):
            attachment.download_state = Attachment.DownloadState.PENDING
        attachment.save()
        stored.append(attachment)
    queue_downloads(stored)
    return stored


def remove_stored_files(names: list[str]) -> None:
    """Remove attachment files whose rows were deleted (call after the delete commits)."""
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:  # a file already gone must not stop the rest
            logger.warning("attachment: could not remove a stored file")


# ---------------------------------------------------------------- outgoing files


def content_type_of(upload) -> str:
    """What a file says it is: the browser's type, else a guess from its name."""
    given = (getattr(upload, "content_type", "") or "").split(";")[0].strip().lower()
    if given and given != "application/octet-stream":
        return given
    return mimetypes.guess_type(upload.name or "")[0] or "application/octet-stream"


def check_outgoing_files(platform: str, files: list) -> list[str]:
    """The kind each file goes out as on `platform`, or one ValidationError on `files` naming
    each file that breaks a limit (type, size, count, total) of the channel."""
    if not files:
        return []
    channel = channels.get(platform)
    capabilities = channel.capabilities
    errors, kinds = [], []
    if capabilities.attachments and len(files) > capabilities.max_files:
        errors.append(
            _("At most %(count)d files per message on %(channel)s (%(given)d given).")
            % {"count": capabilities.max_files, "channel": channel.label, "given": len(files)}
        )
    for upload in files:
        name = upload.name or "file"
        if not upload.size:
            errors.append(_("“%(name)s” is empty.") % {"name": name})
            continue
        try:
            kinds.append(
                channels.file_kind(
                    capabilities, channel.label, name, content_type_of(upload), upload.size
                )
            )
        except ValidationError as exc:
            errors.extend(exc.message_dict["files"])
    total = sum(upload.size or 0 for upload in files)
    if capabilities.files_total_bytes is not None and total > capabilities.files_total_bytes:
        errors.append(
            _("The files come to %(size)s; %(channel)s takes up to %(limit)s per message.")
            % {
                "size": channels._megabytes(total),
                "channel": channel.label,
                "limit": channels._megabytes(capabilities.files_total_bytes),
            }
        )
    if errors:
        raise ValidationError({"files": list(dict.fromkeys(errors))})
    return kinds


def _clean_name(name: str | None) -> str:
    return (name or "").replace("\x00", "").strip() or "file"


def store_outgoing_files(
    message: Message, files: list, kinds: list[str], stored: list[Attachment] | None = None
) -> list[Attachment]:
    """Store each file of a queued message (chunk by chunk: Django's storage reads
    `upload.chunks()`), appending each to `stored` as it is saved: the caller's transaction
    holds the rows, and the caller removes the files of `stored` if it fails."""
    stored = [] if stored is None else stored
    for upload, kind in zip(files, kinds, strict=True):
        attachment = Attachment(
            message=message,
            conversation_id=message.conversation_id,
            kind=kind,
            filename=_clean_name(upload.name)[:255],
            content_type=content_type_of(upload)[:255],
            size=upload.size,
        )
        attachment.file.save(_clean_name(upload.name), upload, save=False)
        stored.append(attachment)
        attachment.save()
    return stored


def outbound_files(message: Message) -> tuple[channels.OutboundFile, ...]:
    """The typed files of a queued message, as its channel's sender streams them."""
    return tuple(
        channels.OutboundFile(
            storage_name=attachment.file.name,
            filename=attachment.filename or "file",
            content_type=attachment.content_type or "application/octet-stream",
            size=attachment.size or 0,
            kind=attachment.kind,
        )
        for attachment in message.attachments.all()
        if attachment.stored
    )
