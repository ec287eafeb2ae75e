"""WhatsApp number lifecycle: deactivate/reactivate, and deletion that always tells the truth
beforehand and never leaves half a number behind."""

import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from crm.celery import task
from crm.services import delete_in_database
from crm.vocabulary import status_label
from messaging import events
from messaging.services.attachments import remove_stored_files

from ..models import WhatsAppNumber
from .web import forget_device

logger = logging.getLogger(__name__)

PREVIEW_SQL = """
SELECT
  (SELECT count(*) FROM channels_integrations_bot WHERE number_id = %(id)s) AS bots,
  (SELECT count(*) FROM channels_integrations_botrule r
     JOIN channels_integrations_bot b ON b.id = r.bot_id WHERE b.number_id = %(id)s) AS bot_rules,
  (SELECT count(*) FROM messaging_conversation
     WHERE platform = 'whatsapp' AND source_id = %(id)s) AS conversations,
  (SELECT count(*) FROM messaging_message m
     JOIN messaging_conversation c ON c.id = m.conversation_id
     WHERE c.platform = 'whatsapp' AND c.source_id = %(id)s) AS messages,
  (SELECT count(*) FROM messaging_attachment a
     JOIN messaging_conversation c ON c.id = a.conversation_id
     WHERE c.platform = 'whatsapp' AND c.source_id = %(id)s) AS attachments,
  (SELECT count(*) FROM channels_integrations_broadcast WHERE number_id = %(id)s) AS broadcasts,
  (SELECT count(*) FROM channels_integrations_broadcastrecipient r
     JOIN channels_integrations_broadcast b ON b.id = r.broadcast_id
     WHERE b.number_id = %(id)s) AS broadcast_recipients,
  (SELECT count(*) FROM channels_integrations_whatsappsession WHERE number_id = %(id)s) AS sessions,
  (SELECT count(*) FROM channels_integrations_whatsapptemplate WHERE number_id = %(id)s)
    AS templates
"""


class NumberDeletionFailed(Exception):
    """The delete was rolled back; nothing was deleted. `cause` says why, in words."""

    def __init__(self, number_id: int, cause: str):
        super().__init__(cause)
        self.number_id = number_id
        self.cause = cause


def deletion_preview(number: WhatsAppNumber) -> dict[str, int]:
    """Exactly what goes with the number, counted by the database in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(PREVIEW_SQL, {"id": number.pk})
        row = cursor.fetchone()
        names = [column.name for column in cursor.description]
    counts = dict(zip(names, row, strict=True))
    counts["total"] = sum(counts.values()) + 1  # + the number itself
    return counts


def set_number_active(actor, number: WhatsAppNumber, active: bool) -> WhatsAppNumber:
    """A deactivated number keeps its history and receives and sends nothing."""
    number.is_active = active
    number.status = WhatsAppNumber.Status.DISCONNECTED
    if active:
        number.last_error = ""  # e.g. a failed deletion's error: reactivating acknowledges it
    with transaction.atomic():
        number.save(update_fields=["is_active", "status", "last_error", "updated_at"])
        if not active:
            _stop_session(number)
        publish_number_updated(number)
    logger.info(
        "number=%s %s by user=%s", number.pk, "reactivated" if active else "deactivated", actor.pk
    )
    return number


def delete_number(actor, number: WhatsAppNumber) -> str:
    """Delete now ("deleted"), or mark `deleting` and hand it to a worker ("deleting") when the
    number carries more rows than settings.NUMBER_DELETE_SYNC_LIMIT.

    Raises NumberDeletionFailed if the immediate delete fails (then nothing was deleted).
    """
    delete_number_in_background = task(
        "channels_integrations.whatsapp.tasks.delete_number_in_background"
    )

    total = deletion_preview(number)["total"]
    if total <= settings.NUMBER_DELETE_SYNC_LIMIT:
        run_number_deletion(number.pk, actor_id=actor.pk)
        return "deleted"
    with transaction.atomic():
        WhatsAppNumber.objects.filter(pk=number.pk).update(
            status=WhatsAppNumber.Status.DELETING, last_error=""
        )
        _stop_session(number)
        transaction.on_commit(lambda: delete_number_in_background.delay(number.pk, actor.pk))
    logger.info("number=%s marked deleting (%d rows) by user=%s", number.pk, total, actor.pk)
    return "deleting"


def run_number_deletion(number_id: int, *, actor_id=None) -> None:
    """Delete the number and everything under it in one transaction, one SQL DELETE (the
    database cascades). Either all of it is gone, or nothing is."""
    number = WhatsAppNumber.objects.filter(pk=number_id).first()
    if number is None:
        return  # already gone: a repeated task is harmless
    try:
        with transaction.atomic():
            _stop_session(number)
            stored_files = _delete_big_children(number_id)
            forget_device(number.web_jid)  # a QR-linked device's keys go with the number
            delete_in_database(number)
            transaction.on_commit(lambda: remove_stored_files(stored_files))
            events.publish(
                "number.deleted",
                {"id": number_id, "deleted_by": actor_id},
                company_id=number.company_id,
            )
    except DatabaseError as exc:
        cause = f"The database refused the delete ({exc.__class__.__name__}); nothing was deleted."
        logger.error("number=%s deletion failed: %s", number_id, exc.__class__.__name__)
        _mark_deletion_failed(number, cause)
        raise NumberDeletionFailed(number_id, cause) from exc
    logger.info("number=%s deleted by user=%s", number_id, actor_id)


def _delete_big_children(number_id: int) -> list[str]:
    """Delete the number's attachments, messages and broadcast recipients set-wise first;
    returns the names of the attachment files to remove once the delete has committed.

    PostgreSQL runs ON DELETE CASCADE as one trigger per parent row (per conversation, per
    broadcast); set-based DELETEs of the largest tables are 2-3x faster and, like the
    cascade, load nothing into Python but file names. The DELETE of the number then cascades
    the rest."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH gone AS (DELETE FROM messaging_attachment a USING messaging_conversation c "
            "WHERE a.conversation_id = c.id AND c.platform = 'whatsapp' AND c.source_id = %s "
            "RETURNING a.file) "
            "SELECT file FROM gone WHERE file <> ''",
            [number_id],
        )
        stored_files = [name for (name,) in cursor.fetchall()]
        cursor.execute(
            "DELETE FROM messaging_message m USING messaging_conversation c "
            "WHERE m.conversation_id = c.id AND c.platform = 'whatsapp' AND c.source_id = %s",
            [number_id],
        )
        cursor.execute(
            "DELETE FROM channels_integrations_broadcastrecipient r "
            "USING channels_integrations_broadcast b "
            "WHERE r.broadcast_id = b.id AND b.number_id = %s",
            [number_id],
        )
    return stored_files


def _mark_deletion_failed(number: WhatsAppNumber, cause: str) -> None:
    """The number comes back, deactivated, with the error shown."""
    with transaction.atomic():
        WhatsAppNumber.objects.filter(pk=number.pk).update(
            status=WhatsAppNumber.Status.ERROR, is_active=False, last_error=cause
        )
        events.publish(
            "number.deletion_failed",
            {"id": number.pk, "error": cause},
            company_id=number.company_id,
        )


def _stop_session(number: WhatsAppNumber) -> None:
    # The live connection (when one runs) watches this row and lets go of the number.
    from .sessions import stop_session

    stop_session(number.pk)


def publish_number_updated(number: WhatsAppNumber) -> None:
    data = {
        "id": number.pk,
        "phone": str(number.phone),
        "display_name": number.display_name,
        "is_active": number.is_active,
        "status": number.status,
        "status_label": status_label(number),  # lazy: each reader's language
    }
    events.publish("number.updated", data, company_id=number.company_id)
