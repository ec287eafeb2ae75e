import logging

from celery import shared_task
from celery.signals import worker_shutting_down

from .services import NumberDeletionFailed, run_number_deletion

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def delete_number_in_background(number_id: int, actor_id: int | None = None) -> None:
    """The same transactional delete as the immediate path, for numbers with a long history."""
    try:
        run_number_deletion(number_id, actor_id=actor_id)
    except NumberDeletionFailed:
        pass  # recorded on the number and published; nothing was deleted


@shared_task(ignore_result=True)
def answer_with_bots(message_id: int) -> None:
    """Let the active bots of an inbound message's number answer it (at most once each)."""
    from .services.bots import answer_inbound

    answer_inbound(message_id)


# ---------------------------------------------------------------- broadcasts


@shared_task(ignore_result=True)
def dispatch_broadcasts() -> None:
    """Beat, every few seconds: mark stale claims unknown, start due scheduled broadcasts, and
    (re)kick the sending ones no batch chain is working on (e.g. after a worker died)."""
    from .services import broadcasts

    for broadcast_id in broadcasts.dispatch():
        send_broadcast_batch.delay(broadcast_id)


@shared_task(bind=True, ignore_result=True)
def send_broadcast_batch(self, broadcast_id: int, lease_token: str | None = None) -> None:
    """One small batch of a broadcast; re-queues itself with a short countdown (never a long
    ETA) while recipients remain. One chain per broadcast, held by a Redis lease."""
    import uuid

    from .services import broadcasts

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


# ---------------------------------------------------------------- WhatsApp sessions


@shared_task(ignore_result=True)
def run_whatsapp_session(number_id: int) -> str:
    """Hold one number's QR-linked session until it stops (routed to the `connections`
    queue: a long-lived task). A second worker asked to start it finds the lease held."""
    from .whatsapp.sessions import run_session

    return run_session(number_id)


@shared_task(ignore_result=True)
def run_telegram_listener(account_id: int) -> str:
    """Hold one Telegram account's client until it stops (the `connections` queue)."""
    from .telegram.listener import run_listener

    return run_listener(account_id)


@shared_task(ignore_result=True)
def supervise_connections() -> dict:
    """Beat: WhatsApp sessions and Telegram listeners that should run and do not are started;
    live ones are health-checked."""
    from .email.imap import supervise_idle
    from .telegram.listener import supervise as supervise_telegram
    from .whatsapp.sessions import supervise as supervise_whatsapp

    return {
        "whatsapp": supervise_whatsapp(),
        "telegram": supervise_telegram(),
        "email_idle": supervise_idle(),
    }


@worker_shutting_down.connect
def _close_connections_on_shutdown(**kwargs):
    """SIGTERM: every connection of this worker closes and releases its lease (threads pool)."""
    from .connections import SHUTDOWN

    SHUTDOWN.set()


# ---------------------------------------------------------------- email


@shared_task(ignore_result=True)
def dispatch_email_polls() -> list:
    """Beat: queue a poll of every account that is due."""
    from .email.imap import dispatch_polls

    return dispatch_polls()


@shared_task(ignore_result=True, soft_time_limit=600)
def poll_email_account(account_id: int) -> dict:
    from .email.imap import poll_account, poll_finished

    try:
        return poll_account(account_id)
    finally:
        poll_finished(account_id)


@shared_task(ignore_result=True)
def run_email_idle(account_id: int) -> str:
    """IMAP IDLE on one account's INBOX (the `connections` queue)."""
    from .email.imap import run_idle

    return run_idle(account_id)
