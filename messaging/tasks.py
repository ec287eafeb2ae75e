"""Sending's Celery tasks. Both are idempotent (the claim decides who sends), so they are
acknowledged late: a task lost with its worker comes back from the broker, and the sweeper
re-queues what the broker lost too."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, connection

from .sending import Outcome
from .services import outbox

logger = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 3.0


@shared_task(acks_late=True, ignore_result=True)
def deliver_message(message_id: int, settle: dict | None = None) -> None:
    """Send one queued message at most once (see messaging.sending). `settle`: an outcome the
    channel already gave whose recording failed; it is written now, nothing is sent."""
    try:
        if settle:
            message = outbox.MESSAGES.model.objects.filter(pk=message_id).first()
            if message is not None:
                outbox.settle_message(message_id, message.send_claimed_at, Outcome(**settle))
            return
        outbox.deliver_message(message_id)
    except outbox.OutcomeNotRecorded as exc:
        connection.close()
        logger.warning("send: message=%s sent; recording it after PostgreSQL is back", message_id)
        outcome = exc.outcome
        outbox.enqueue_delivery(
            message_id,
            countdown=DATABASE_RETRY_SECONDS,
            settle={"kind": outcome.kind, "external_id": outcome.external_id},
        )
    except (OperationalError, InterfaceError):
        # PostgreSQL away before anything was sent (the claim, the load): try again shortly.
        connection.close()
        logger.warning("send: message=%s database unavailable; retrying", message_id)
        outbox.enqueue_delivery(message_id, countdown=DATABASE_RETRY_SECONDS)


@shared_task(ignore_result=True)
def sweep_outbox() -> dict:
    """Beat: re-queue sends whose task vanished; settle claims that went stale."""
    return outbox.sweep_outbox()
