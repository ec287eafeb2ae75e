import logging

from celery import shared_task
from django.conf import settings

from crm import coordination

from . import services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def drain_inbox():
    """Ingest waiting webhook deliveries (queued by the webhook, and by beat as a sweep). The
    flag is cleared first, so a delivery stored from now on queues another drain."""
    try:
        coordination.redis_client().delete(coordination.key(services.KICK_KEY))
    except Exception:
        logger.warning("webhook inbox: could not clear the drain flag", exc_info=True)
    totals = services.drain(time_budget=settings.WEBHOOK_INBOX_DRAIN_SECONDS)
    if totals["deliveries"] or totals["failed"] or totals["dropped"]:
        logger.info(
            "webhook inbox: drained deliveries=%s failed=%s parked=%s dropped=%s",
            totals["deliveries"],
            totals["failed"],
            totals["parked"],
            totals["dropped"],
        )
    if totals.get("budget_spent"):
        services.kick()
