"""Sending's Celery tasks. Both are idempotent (the claim decides who sends), so they are
acknowledged late: a task lost with its worker comes back from the broker, and the sweeper
re-queues what the broker lost too."""

import logging
from dataclasses import asdict
from datetime import datetime

from celery import shared_task
from django.db import connection

from .sending import Outcome
from .services import outbox

logger = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 3.0


@shared_task(acks_late=True, ignore_result=True)
def deliver_message(message_id: int, settle: dict | None = None) -> None:
    """Send one queued message at most once (see messaging.sending). `settle`: what an attempt
    whose recording PostgreSQL refused came to (and its claim); it is written now and the
    channel is not called again."""
    try:
        if settle:
            claim = datetime.fromisoformat(settle["claim"])
            outbox.settle_message(message_id, claim, Outcome(**settle["outcome"]))
        else:
            outbox.deliver_message(message_id)
    except outbox.OutcomeNotRecorded as exc:
        connection.close()
        logger.warning(
            "send: message=%s %s; recorded once PostgreSQL is back", message_id, exc.outcome.kind
        )
        settle = {"claim": exc.claim.isoformat(), "outcome": asdict(exc.outcome)}
        outbox.enqueue_delivery(message_id, countdown=DATABASE_RETRY_SECONDS, settle=settle)
    except outbox.DATABASE_ERRORS:
        # PostgreSQL away before a claim, or while settling: the same work again shortly.
        connection.close()
        logger.warning("send: message=%s database unavailable; retrying", message_id)
        outbox.enqueue_delivery(message_id, countdown=DATABASE_RETRY_SECONDS, settle=settle)


@shared_task(ignore_result=True)
def sweep_outbox() -> dict:
    """Beat: re-queue sends whose task vanished; settle claims that went stale."""
    return outbox.sweep_outbox()


REACTION_SEND_ATTEMPTS = 4


@shared_task(ignore_result=True)
def send_reaction(message_id: int, attempt: int = 1) -> None:
    """Send our reaction on a customer's message (its current state) through the channel; a
    transient refusal is tried again (2, 4, 8 s or the channel's wait), the last one is kept
    on the reaction."""
    from .services.reactions import send_reaction as send

    wait = send(message_id, final=attempt >= REACTION_SEND_ATTEMPTS)
    if wait is not None:
        countdown = min(60.0, max(wait, 2.0**attempt))
        send_reaction.apply_async((message_id, attempt + 1), countdown=countdown)


@shared_task(acks_late=True, ignore_result=True)
def download_attachment(attachment_id: int) -> None:
    """Download one announced inbound file (idempotent: see messaging.services.downloads)."""
    from .services import downloads

    downloads.download_attachment(attachment_id)


@shared_task(ignore_result=True)
def sweep_downloads() -> dict:
    """Beat: queue again inbound file downloads whose task vanished (see downloads)."""
    from .services import downloads

    return downloads.sweep_pending_downloads()


@shared_task(ignore_result=True)
def wake_snoozed_conversations() -> int:
    """Beat: snoozed conversations whose time has come are open again (idempotent: a second
    run finds nothing due)."""
    from .services.states import wake_due_conversations

    return wake_due_conversations()
