"""WhatsApp's Celery tasks: number deletion, bots, broadcasts and QR-linked sessions."""

import logging
import uuid

from celery import shared_task

from . import broadcasts
from .bots import answer_inbound
from .numbers import NumberDeletionFailed, run_number_deletion
from .sessions import run_session

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def delete_number_in_background(number_id: int, actor_id: int | None = None) -> None:
    """The same transactional delete as the immediate path, for numbers with a long history."""
    try:
        run_number_deletion(number_id, actor_id=actor_id)
    except NumberDeletionFailed:
        pass  # recorded on the number and published; nothing was deleted


# acks_late: idempotent (a bot answers a message at most once; a recipient's claim decides who
# sends it), so a task lost with its worker is redelivered rather than dropped.
@shared_task(acks_late=True, ignore_result=True)
def answer_with_bots(message_id: int) -> None:
    """Let the active bots of an inbound message's number answer it (at most once each)."""
    answer_inbound(message_id)


# ---------------------------------------------------------------- broadcasts


@shared_task(ignore_result=True)
def dispatch_broadcasts() -> None:
    """Beat, every few seconds: mark stale claims unknown, start due scheduled broadcasts, and
    (re)kick the sending ones no batch chain is working on (e.g. after a worker died)."""
    for broadcast_id in broadcasts.dispatch():
        send_broadcast_batch.delay(broadcast_id)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def send_broadcast_batch(self, broadcast_id: int, lease_token: str | None = None) -> None:
    """One small batch of a broadcast; re-queues itself with a short countdown (never a long
    ETA) while recipients remain. One chain per broadcast, held by a Redis lease."""
    token = lease_token or self.request.id or uuid.uuid4().hex
    if not broadcasts.take_lease(broadcast_id, token):
        logger.debug("broadcast=%s batch skipped: another chain holds the lease", broadcast_id)
        return
    try:
        result = broadcasts.run_broadcast_batch(
            broadcast_id, renew_lease=lambda: broadcasts.take_lease(broadcast_id, token)
        )
    except Exception:
        broadcasts.release_lease(broadcast_id, token)
        raise  # beat kicks the broadcast again
    if result.again_in is None or self.request.is_eager:
        broadcasts.release_lease(broadcast_id, token)  # eager: beat continues it
        return
    # Keep the lease across the countdown so beat does not start a second chain meanwhile.
    broadcasts.take_lease(broadcast_id, token, seconds=result.again_in + broadcasts.lease_seconds())
    send_broadcast_batch.apply_async((broadcast_id, token), countdown=result.again_in)


@shared_task(ignore_result=True)
def publish_broadcast_progress(broadcast_id: int, company_id: int) -> None:
    """The end of a progress window (broadcasts.publish_progress_shortly): the counts now."""
    broadcasts.publish_progress(broadcast_id, company_id)


@shared_task(ignore_result=True)
def run_whatsapp_session(number_id: int) -> str:
    """Hold one number's QR-linked session until it stops (routed to the `connections`
    queue: a long-lived task). A second worker asked to start it finds the lease held."""
    return run_session(number_id)


# ---------------------------------------------------------------- message templates


@shared_task(ignore_result=True)
def sync_whatsapp_templates() -> dict:
    """Beat, daily: read the message templates of every active Cloud number from Meta."""
    from .templates import sync_all

    return sync_all()
