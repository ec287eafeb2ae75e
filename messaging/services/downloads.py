"""Inbound files a channel announced but did not hand over (a WhatsApp Cloud media id) are
downloaded in the background: `download_attachment` (the Celery task
messaging.tasks.download_attachment) claims the attachment, asks its channel to stream the
file into a temporary file (within settings.ATTACHMENT_MAX_BYTES), stores it and marks it
`ready`, or `failed` with words an agent can act on; the agent may retry a failed one.

Idempotent: the claim (a conditional UPDATE of a pending, unclaimed attachment) lets one task
download it; a second run finds it claimed or ready and does nothing. A claim older than
DOWNLOAD_CLAIM_STALE_SECONDS (its worker died) may be taken again."""

import logging
import tempfile
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.celery import task

from .. import channels, events
from ..channels import DownloadError, MediaToFetch
from ..models import Attachment, Message
from ..payloads import message_payload

logger = logging.getLogger(__name__)

DOWNLOAD_TASK = "messaging.tasks.download_attachment"
CLAIM_STALE = timedelta(minutes=10)
# A pending file with no claim this long after it was announced lost its task (a broker that
# was down, a queue purged): the sweeper queues it again.
UNCLAIMED_STALE = timedelta(minutes=2)
# Claims that never finished (the worker died mid-download, e.g. on a file that kills it):
# after this many the file is failed in words instead of being tried forever.
MAX_ATTEMPTS = 5


def enqueue_download(attachment_id: int) -> bool:
    """Queue the download task (after the caller's commit); False when the broker is down
    (the attachment stays pending, and an agent's retry or a later run takes it)."""
    try:
        task(DOWNLOAD_TASK).delay(attachment_id)
    except Exception:
        logger.warning("attachment=%s download not queued (broker down?)", attachment_id)
        return False
    return True


def queue_downloads(attachments: list[Attachment]) -> None:
    for attachment in attachments:
        if attachment.download_state == Attachment.DownloadState.PENDING:
            transaction.on_commit(lambda pk=attachment.pk: enqueue_download(pk), robust=True)


def sweep_pending_downloads(limit: int = 500) -> dict:
    """Beat: queue again the pending downloads whose task vanished (never claimed a while
    after they were announced, or claimed by a worker that died); fail in words those whose
    claims kept dying. A second queued task for the same file finds it claimed (harmless)."""
    now = timezone.now()
    pending = Attachment.objects.filter(download_state=Attachment.DownloadState.PENDING)
    lost = pending.filter(
        Q(download_started_at__isnull=True, created_at__lt=now - UNCLAIMED_STALE)
        | Q(download_started_at__lt=now - CLAIM_STALE)
    )
    exhausted = list(
        lost.filter(download_attempts__gte=MAX_ATTEMPTS).values_list("pk", flat=True)[:limit]
    )
    for attachment in Attachment.objects.filter(pk__in=exhausted):
        _finish(
            attachment,
            Attachment.DownloadState.FAILED,
            error=_("The download stopped %(count)s times; try again later.")
            % {"count": attachment.download_attempts},
        )
    requeued = list(
        lost.filter(download_attempts__lt=MAX_ATTEMPTS).values_list("pk", flat=True)[:limit]
    )
    queued = sum(enqueue_download(pk) for pk in requeued)
    if requeued or exhausted:
        logger.info(
            "downloads: %s lost downloads queued again, %s failed after %s attempts",
            queued,
            len(exhausted),
            MAX_ATTEMPTS,
        )
    return {"requeued": queued, "failed": len(exhausted)}


def _claim(attachment_id: int) -> bool:
    now = timezone.now()
    return bool(
        Attachment.objects.filter(
            Q(download_started_at__isnull=True) | Q(download_started_at__lt=now - CLAIM_STALE),
            pk=attachment_id,
            download_state=Attachment.DownloadState.PENDING,
        ).update(download_started_at=now, download_attempts=F("download_attempts") + 1)
    )


def download_attachment(attachment_id: int) -> str | None:
    """Fetch one pending attachment; its new state, or None when it was not ours to fetch."""
    if not _claim(attachment_id):
        logger.info("attachment=%s download already claimed or not pending", attachment_id)
        return None
    attachment = Attachment.objects.select_related("conversation").get(pk=attachment_id)
    conversation = attachment.conversation
    channel = channels.get(conversation.platform)
    source = conversation.source
    media = MediaToFetch(
        external_id=attachment.external_id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        max_bytes=settings.ATTACHMENT_MAX_BYTES,
        thread_id=conversation.external_thread_id,
        size=attachment.size,
        ref=attachment.download_ref or {},
    )
    with tempfile.TemporaryFile() as spool:
        try:
            if source is None:
                raise DownloadError(_("This conversation's channel is gone."))
            content_type = channel.fetch_media(source, media, spool)
        except DownloadError as exc:
            logger.warning("attachment=%s download failed: %s", attachment_id, exc.reason)
            _finish(attachment, Attachment.DownloadState.FAILED, error=exc.reason)
            return Attachment.DownloadState.FAILED
        except Exception:
            logger.exception("attachment=%s download failed unexpectedly", attachment_id)
            _finish(
                attachment,
                Attachment.DownloadState.FAILED,
                error=_("The download failed unexpectedly; try again."),
            )
            return Attachment.DownloadState.FAILED
        size = spool.tell()
        spool.seek(0)
        name = attachment.filename or f"{attachment.kind}-{attachment.pk}"
        attachment.file.save(name, File(spool, name=name), save=False)
    attachment.size = size
    if content_type and not attachment.content_type:
        attachment.content_type = content_type[:255]
    _finish(attachment, Attachment.DownloadState.READY, fields=["file", "size", "content_type"])
    logger.info("attachment=%s downloaded (%d bytes)", attachment_id, size)
    return Attachment.DownloadState.READY


def _finish(attachment: Attachment, state: str, *, error: str = "", fields=()) -> None:
    """Record the outcome under our claim and publish the message's change after commit."""
    with transaction.atomic():
        attachment.download_state = state
        attachment.download_error = error[:500]
        attachment.download_started_at = None
        attachment.save(
            update_fields=[*fields, "download_state", "download_error", "download_started_at"]
        )
        _publish(attachment)


def _publish(attachment: Attachment) -> None:
    message = Message.objects.get(pk=attachment.message_id)
    events.publish(
        "message.updated",
        message_payload(message),
        conversation=attachment.conversation,
    )


def retry_download(actor, attachment: Attachment) -> Attachment:
    """A failed download is tried again (in the background)."""
    with transaction.atomic():
        changed = Attachment.objects.filter(
            pk=attachment.pk, download_state=Attachment.DownloadState.FAILED
        ).update(
            download_state=Attachment.DownloadState.PENDING,
            download_error="",
            download_started_at=None,
        )
        if not changed:
            raise ValidationError({"attachment": [_("Only a failed download can be tried again.")]})
        attachment.refresh_from_db()
        _publish(attachment)
        transaction.on_commit(lambda: enqueue_download(attachment.pk), robust=True)
    logger.info(
        "attachment=%s download retried by user=%s", attachment.pk, getattr(actor, "pk", None)
    )
    return attachment
