import logging

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "beat:last_tick"


@shared_task(ignore_result=True)
def beat_heartbeat():
    """Proves beat and a worker are alive; /health reports its age."""
    cache.set(BEAT_HEARTBEAT_KEY, timezone.now().isoformat(), timeout=None)
