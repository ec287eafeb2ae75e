"""Builds one export's ZIP on disk, streaming: conversations and messages are read in chunks,
attachments are copied from storage in chunks, and conversations.json / messages.csv are
spooled to temporary files (a ZIP takes one member at a time) and copied in at the end. The
archive is written as `<name>.part` and renamed when complete, so a download never sees half
of one.

Inside: README.txt, conversations.json, messages.csv (UTF-8 with a BOM, for Excel), and
files/<conversation id>/<message id>-<file name>.

Progress (conversations done of total) is written and published in batches: every
EXPORT_PROGRESS_BATCH conversations or EXPORT_HEARTBEAT_SECONDS, whichever comes first; that
write is the heartbeat the sweeper reads, and it is conditional on the job still running, so
a job the sweeper failed stops here (fencing)."""

import csv
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import zipfile

from django.conf import settings
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.models import User
from messaging import channels
from messaging.models import Message

from . import services
from .models import CLIENT, ExportJob

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
CSV_COLUMNS = [
    "conversation_id",
    "message_id",
    "created_at",
    "direction",
    "status",
    "author",
    "sender_name",
    "sender_address",
    "text",
    "attachments",
]
README = gettext_noop("""Switchboard export
==================

{subject}
Exported {exported_at} (UTC) by {requester}: {conversations} conversations, {messages} messages, {files} files.

conversations.json  every conversation with its messages, in order: direction (in: the client
                    wrote; out: we did; note: a private note of the team), text, status,
                    timestamps (ISO 8601, UTC), author (the agent who wrote it; empty for
                    the client's messages and for bots), sender, and each attachment's name,
                    type, size and path in this archive.
messages.csv        one line per message (UTF-8 with a BOM, so Excel shows every alphabet);
                    the same fields, the attachments' names separated by "; ".
files/              the stored attachments: files/<conversation id>/<message id>-<file name>.
                    A file the channel never handed over (over the size limit, a failed
                    download) is listed in conversations.json with "path": null and a note.
""")


class Abandoned(Exception):
    """The job is no longer ours (the sweeper failed it): stop without writing more."""


class BuildFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def claim(job_id: int) -> bool:
    now = timezone.now()
    return bool(
        ExportJob.objects.filter(pk=job_id, state=ExportJob.State.QUEUED).update(
            state=ExportJob.State.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
        )
    )


def build_export(job_id: int) -> str | None:
    """Build the job's archive; its final state, or None when it was not ours to build."""
    if not claim(job_id):
        logger.info("exports: job=%s already taken or finished", job_id)
        return None
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    logger.info("exports: job=%s building %s=%s", job.pk, job.kind, job.object_id)
    try:
        _build(job)
    except Abandoned:
        logger.warning("exports: job=%s abandoned (failed by the sweeper)", job_id)
        return ExportJob.State.FAILED
    except BuildFailed as exc:
        services.fail(job_id, exc.reason)
        return ExportJob.State.FAILED
    except OSError as exc:
        logger.exception("exports: job=%s could not write the archive", job_id)
        services.fail(
            job_id,
            _("The archive could not be written (%(reason)s). Start it again later.")
            % {"reason": exc.strerror or exc.__class__.__name__},
        )
        return ExportJob.State.FAILED
    except Exception:
        logger.exception("exports: job=%s failed unexpectedly", job_id)
        services.fail(job_id, _("The export failed unexpectedly. Start it again."))
        return ExportJob.State.FAILED
    return ExportJob.State.DONE


class Progress:
    def __init__(self, job: ExportJob, total: int):
        self.job = job
        self.total = total
        self.done = self.messages = self.files = 0
        self.since_flush = 0
        self.flushed_at = time.monotonic()

    def conversation_done(self) -> None:
        self.done += 1
        self.since_flush += 1
        if self.since_flush >= settings.EXPORT_PROGRESS_BATCH or self._late():
            self.flush()

    def beat(self) -> None:
        """Inside a long conversation: keep the heartbeat fresh."""
        if self._late():
            self.flush()

    def _late(self) -> bool:
        return time.monotonic() - self.flushed_at >= settings.EXPORT_HEARTBEAT_SECONDS

    def flush(self) -> None:
        updated = ExportJob.objects.filter(pk=self.job.pk, state=ExportJob.State.RUNNING).update(
            conversations_done=self.done,
            conversations_total=self.total,
            messages_done=self.messages,
            files_done=self.files,
            heartbeat_at=timezone.now(),
        )
        if not updated:
            raise Abandoned
        self.job.conversations_done, self.job.conversations_total = self.done, self.total
        services.publish(self.job)
        self.since_flush = 0
        self.flushed_at = time.monotonic()


def _iso(value) -> str | None:
    return value.isoformat() if value else None


SAFE_NAME = re.compile(r"[^\w.\- ()\[\]+,]+", re.UNICODE)


def safe_name(name: str, fallback: str) -> str:
    """A file name that stays inside its folder of the archive (no separators, no dots-only)."""
    cleaned = SAFE_NAME.sub("_", os.path.basename(name.replace("\\", "/"))).strip(" .")
    return cleaned[:150] or fallback


def _build(job: ExportJob) -> None:
    requester: User | None = job.requested_by
    if job.kind == CLIENT and requester is None:
        raise BuildFailed(_("The person who asked for this export is no longer a member."))
    if not _subject_exists(job):
        raise BuildFailed(
            _("“%(name)s” was deleted before the export ran.") % {"name": job.subject_name}
        )
    conversations = services.subject_conversations(
        job.company_id, job.kind, job.object_id, requester
    ).select_related("client", "assignee")
    total = conversations.count()
    name = f"exports/{job.company_id}/{uuid.uuid4().hex}.zip"
    ExportJob.objects.filter(pk=job.pk).update(file=name, conversations_total=total)
    job.file = name
    final = services.archive_path(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".part")
    progress = Progress(job, total)
    progress.flush()  # the total, at once
    labels = {c.platform: c.label for c in channels.registered()}
    with (
        tempfile.TemporaryFile() as json_spool,
        tempfile.TemporaryFile() as csv_spool,
        zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive,
    ):
        json_text = io.TextIOWrapper(json_spool, encoding="utf-8", newline="")
        csv_text = io.TextIOWrapper(csv_spool, encoding="utf-8", newline="")
        csv_text.write("\ufeff")  # Excel reads UTF-8 only with its byte-order mark
        rows = csv.writer(csv_text)
        rows.writerow(CSV_COLUMNS)
        json_text.write("{")
        json_text.write(
            json.dumps(
                {
                    "exported_at": timezone.now().isoformat(),
                    "subject": {"kind": job.kind, "id": job.object_id, "name": job.subject_name},
                },
                ensure_ascii=False,
            )[1:-1]
        )
        json_text.write(', "conversations": [\n')
        first = True
        for conversation in conversations.order_by("id").iterator(chunk_size=200):
            # One message at a time, even in a conversation of a hundred thousand.
            record = json.dumps(_conversation(conversation, labels), ensure_ascii=False)
            json_text.write(("" if first else ",\n") + record[:-1] + ', "messages": [')
            for n, message in enumerate(_messages(conversation, archive, rows, progress)):
                json_text.write(("," if n else "") + json.dumps(message, ensure_ascii=False))
            json_text.write("]}")
            first = False
            progress.conversation_done()
        json_text.write("\n]}\n")
        with translation.override(getattr(requester, "language", "") or settings.LANGUAGE_CODE):
            readme = _(README)
        archive.writestr(
            "README.txt",
            readme.format(
                subject=job.subject_name,
                exported_at=timezone.now().strftime("%Y-%m-%d %H:%M"),
                requester=requester.display_name if requester else "-",
                conversations=progress.done,
                messages=progress.messages,
                files=progress.files,
            ),
        )
        for member, spool, text in (
            ("conversations.json", json_spool, json_text),
            ("messages.csv", csv_spool, csv_text),
        ):
            text.flush()
            spool.seek(0)
            with archive.open(member, "w", force_zip64=True) as target:
                shutil.copyfileobj(spool, target, CHUNK)
            text.detach()
    os.replace(partial, final)
    size = final.stat().st_size
    finished = timezone.now()
    updated = ExportJob.objects.filter(pk=job.pk, state=ExportJob.State.RUNNING).update(
        state=ExportJob.State.DONE,
        conversations_done=progress.done,
        conversations_total=progress.done,
        messages_done=progress.messages,
        files_done=progress.files,
        size=size,
        heartbeat_at=finished,
        finished_at=finished,
        expires_at=services.keep_until(finished),
    )
    if not updated:
        final.unlink(missing_ok=True)
        raise Abandoned
    job.refresh_from_db()
    services.publish(job)
    logger.info(
        "exports: job=%s done: %s conversations, %s messages, %s files, %s bytes",
        job.pk,
        progress.done,
        progress.messages,
        progress.files,
        size,
    )


def _subject_exists(job: ExportJob) -> bool:
    if job.kind == CLIENT:
        from crm.models import Client

        model = Client
    else:
        try:
            model = channels.get(job.kind).source_model
        except LookupError:
            return False
    return model.objects.filter(pk=job.object_id).exists()


def _conversation(conversation, labels: dict) -> dict:
    client = conversation.client
    return {
        "id": conversation.pk,
        "channel": labels.get(conversation.platform, conversation.platform),
        "platform": conversation.platform,
        "source_id": conversation.source_id,
        "thread": conversation.external_thread_id,
        "subject": conversation.subject,
        "status": conversation.status,
        "client": client
        and {
            "id": client.pk,
            "name": client.name,
            "phone": str(client.phone or ""),
            "email": client.email,
        },
        "assignee": conversation.assignee and conversation.assignee.display_name,
        "created_at": _iso(conversation.created_at),
        "last_message_at": _iso(conversation.last_message_at),
        "closed_at": _iso(conversation.closed_at),
    }


def _messages(conversation, archive: zipfile.ZipFile, rows, progress: Progress):
    used: set[str] = set()
    messages = (
        Message.objects.filter(conversation_id=conversation.pk)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )
    for message in messages.iterator(chunk_size=500):
        author = message.author.display_name if message.author else ""
        files = [
            _attachment(conversation, message, a, archive, used, progress)
            for a in message.attachments.all()
        ]
        rows.writerow(
            [
                conversation.pk,
                message.pk,
                _iso(message.created_at),
                message.direction,
                message.status,
                author,
                message.sender_name,
                message.sender_address,
                message.body,
                "; ".join(f["name"] for f in files),
            ]
        )
        progress.messages += 1
        if progress.messages % 500 == 0:
            progress.beat()
        yield {
            "id": message.pk,
            "direction": message.direction,
            "text": message.body,
            "status": message.status,
            "error": message.error,
            "author": author or None,
            "bot": message.bot_id is not None,
            "sender_name": message.sender_name,
            "sender_address": message.sender_address,
            "created_at": _iso(message.created_at),
            "sent_at": _iso(message.sent_at),
            "delivered_at": _iso(message.delivered_at),
            "read_at": _iso(message.read_at),
            "attachments": files,
        }


def _attachment(conversation, message, attachment, archive, used: set, progress) -> dict:
    name = attachment.filename or f"{attachment.kind}-{attachment.pk}"
    record = {
        "id": attachment.pk,
        "name": name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "path": None,
    }
    if not attachment.stored:
        record["note"] = attachment.download_error or _("The file was not stored.")
        return record
    member = f"files/{conversation.pk}/{message.pk}-{safe_name(name, str(attachment.pk))}"
    if member in used:  # two files of one message with one name
        member = f"files/{conversation.pk}/{message.pk}-{attachment.pk}-{safe_name(name, 'file')}"
    try:
        source = attachment.file.open("rb")
    except (FileNotFoundError, OSError):
        record["note"] = _("The file is missing from storage.")
        return record
    with source, archive.open(member, "w", force_zip64=True) as target:
        shutil.copyfileobj(source, target, CHUNK)
    used.add(member)
    record["path"] = member
    progress.files += 1
    progress.beat()
    return record
