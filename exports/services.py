"""Export jobs: start one (a channel source's or a client's conversations), who may read and
download it, and beat's upkeep (queue again what was never taken, fail what lost its worker,
delete expired archives). The archive itself is built by exports.archive."""

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Role, User
from accounts.scoping import get_scoped_or_404, scoped
from crm.celery import task
from crm.models import Client
from messaging import channels, events
from messaging.models import Conversation

from .models import CLIENT, ExportJob

logger = logging.getLogger(__name__)

BUILD_TASK = "exports.tasks.build_export"
# A queued job nobody took this long lost its task (the broker was down, a purged queue).
UNCLAIMED_STALE = timedelta(minutes=2)


def may_export(user, kind: str) -> bool:
    """Channels: admins (who may delete them). Clients: whoever may delete a client (every
    member but read-only supervisors)."""
    if user.is_read_only:
        return False
    return kind == CLIENT or user.is_company_admin


def may_access(user, job: ExportJob) -> bool:
    """Read and download: admins; the agent who asked for a client's export."""
    if user.is_company_admin:
        return True
    return job.kind == CLIENT and job.requested_by_id == user.pk and not user.is_read_only


def check_access(user, job: ExportJob) -> None:
    if not may_access(user, job):
        raise PermissionDenied(_("Only company admins can read channel exports."))


def kinds() -> list[tuple[str, str]]:
    """(kind, label): every registered channel's platform, and clients."""
    return [(c.platform, c.label) for c in channels.registered()] + [(CLIENT, _("Client"))]


def subject_of(actor, kind: str, object_id) -> tuple[object, str]:
    """The number, account, mailbox, page or client to export, of `actor`'s company (404
    otherwise), and its name as people read it; ValidationError naming `kind`."""
    if kind == CLIENT:
        client = get_scoped_or_404(Client, actor, pk=object_id)
        return client, str(client)
    try:
        channel = channels.get(kind)
    except LookupError:
        raise ValidationError({"kind": [_("Unknown kind “%(kind)s”.") % {"kind": kind}]}) from None
    source = get_scoped_or_404(channel.source_model, actor, pk=object_id)
    return source, f"{channel.label} {source}"


def subject_conversations(company_id: int, kind: str, object_id: int, requester=None):
    """The conversations an export of this subject holds (a client's: those its requester
    sees, when the company restricts agents to their own)."""
    rows = Conversation.objects.filter(company_id=company_id)
    if kind == CLIENT:
        rows = rows.filter(client_id=object_id)
        return scoped(rows, requester) if requester is not None else rows.none()
    return rows.filter(platform=kind, source_id=object_id)


def job_payload(job: ExportJob) -> dict:
    """What `export.progress` carries (the API's state, in short)."""
    return {
        "id": job.pk,
        "kind": job.kind,
        "object_id": job.object_id,
        "state": job.state,
        "done": job.conversations_done,
        "total": job.conversations_total,
        "percent": job.percent,
        "error": job.error,
        "size": job.size,
    }


def audience(job: ExportJob) -> list[int]:
    """Who hears of a job's progress: its requester and the company's admins (those who may
    read it: may_access)."""
    ids = set(
        User.objects.filter(company_id=job.company_id, role=Role.ADMIN, is_active=True).values_list(
            "pk", flat=True
        )
    )
    if job.requested_by_id:
        ids.add(job.requested_by_id)
    return sorted(ids)


def publish(job: ExportJob) -> None:
    """Through the one realtime door (messaging.events), to those who may read the job."""
    events.publish("export.progress", job_payload(job), user_ids=audience(job))


def start_export(actor, kind: str, object_id) -> ExportJob:
    """Queue an export of the subject's conversations; an unfinished one of the same subject
    is returned instead of starting a second."""
    if not may_export(actor, kind):
        raise PermissionDenied(
            _("Only company admins can export a channel.")
            if kind != CLIENT
            else _("Supervisors can read but not change anything.")
        )
    subject, name = subject_of(actor, kind, object_id)
    running = ExportJob.objects.filter(
        company_id=actor.company_id,
        kind=kind,
        object_id=subject.pk,
        state__in=[ExportJob.State.QUEUED, ExportJob.State.RUNNING],
    )
    if kind == CLIENT:  # holds what its requester sees: only theirs is reused
        running = running.filter(requested_by=actor)
    running = running.first()
    if running is not None:
        return running
    with transaction.atomic():
        job = ExportJob.objects.create(
            company_id=actor.company_id,
            requested_by=actor,
            kind=kind,
            object_id=subject.pk,
            subject_name=name[:300],
            conversations_total=subject_conversations(
                actor.company_id, kind, subject.pk, actor
            ).count(),
        )
        publish(job)
        transaction.on_commit(lambda: enqueue(job.pk), robust=True)
    logger.info("exports: job=%s %s=%s queued by user=%s", job.pk, kind, subject.pk, actor.pk)
    return job


def enqueue(job_id: int) -> bool:
    """Queue the build (False when the broker is down: the job stays queued and the sweeper
    queues it again)."""
    try:
        options = {"queue": settings.EXPORT_QUEUE} if settings.EXPORT_QUEUE else {}
        task(BUILD_TASK).apply_async((job_id,), **options)
    except Exception:
        logger.warning("exports: job=%s not queued (broker down?)", job_id)
        return False
    return True


def archive_path(name: str) -> Path:
    """Where an archive lives on disk (the storage is a folder shared by web and workers)."""
    return Path(default_storage.path(name))


def remove_files(name: str) -> None:
    """An archive and what a build left of it."""
    if not name:
        return
    path = archive_path(name)
    for leftover in (path, path.with_name(path.name + ".part")):
        leftover.unlink(missing_ok=True)


def fail(job_id: int, reason: str, *, only_if_running: bool = True) -> bool:
    """Mark the job failed with a sentence (and remove its partial file); False when it was
    not running any more (finished, or failed already)."""
    rows = ExportJob.objects.filter(pk=job_id)
    if only_if_running:
        rows = rows.filter(state=ExportJob.State.RUNNING)
    updated = rows.update(
        state=ExportJob.State.FAILED, error=reason[:500], finished_at=timezone.now()
    )
    if updated:
        job = ExportJob.objects.get(pk=job_id)
        remove_files(job.file)
        publish(job)
        logger.warning("exports: job=%s failed: %s", job_id, reason)
    return bool(updated)


def sweep_exports(limit: int = 200) -> dict:
    """Beat: queue again jobs nobody took, fail in words those whose worker stopped beating
    (killed, out of memory, the machine restarted), and delete archives past their expiry."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EXPORT_STALE_SECONDS)
    dead = list(
        ExportJob.objects.filter(state=ExportJob.State.RUNNING, heartbeat_at__lt=stale).values_list(
            "pk", flat=True
        )[:limit]
    )
    failed = sum(
        fail(pk, _("The export stopped: its worker was interrupted. Start it again."))
        for pk in dead
    )
    lost = list(
        ExportJob.objects.filter(
            state=ExportJob.State.QUEUED, created_at__lt=now - UNCLAIMED_STALE
        ).values_list("pk", flat=True)[:limit]
    )
    requeued = sum(enqueue(pk) for pk in lost)
    expired = expire_archives(now, limit)
    if failed or requeued or expired:
        logger.info(
            "exports: %s stale jobs failed, %s queued again, %s archives expired",
            failed,
            requeued,
            expired,
        )
    return {"failed": failed, "requeued": requeued, "expired": expired}


def expire_archives(now=None, limit: int = 200) -> int:
    """Delete the files of done jobs past `expires_at` (the job stays, `expired`)."""
    now = now or timezone.now()
    due = list(
        ExportJob.objects.filter(state=ExportJob.State.DONE, expires_at__lte=now).only(
            "pk", "file"
        )[:limit]
    )
    for job in due:
        remove_files(job.file)
        ExportJob.objects.filter(pk=job.pk, state=ExportJob.State.DONE).update(
            state=ExportJob.State.EXPIRED
        )
    return len(due)


def keep_until(finished):
    return finished + timedelta(days=settings.EXPORT_KEEP_DAYS)
