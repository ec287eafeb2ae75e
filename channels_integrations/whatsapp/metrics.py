"""WhatsApp counters, shared by every process (web, workers) through one Redis hash, so the
JSON endpoint and /metrics see what the workers did. A counter that cannot be written (Redis
down) is logged and skipped: metrics never fail a send."""

import json
import logging

import redis
from django.utils import timezone

from crm import coordination

logger = logging.getLogger(__name__)

COUNTERS = (
    "messages_sent",
    "messages_received",
    "qr_generated",
    "errors",
    "failed_reconnects",
)
_COUNTS = "whatsapp:metrics"
_LAST_ERROR = "whatsapp:metrics:last_error"


def increment(name: str, company_id: int | None = None, by: int = 1) -> None:
    try:
        pipe = coordination.redis_client().pipeline()
        pipe.hincrby(coordination.key(_COUNTS), name, by)
        if company_id is not None:
            pipe.hincrby(coordination.key(f"{_COUNTS}:{company_id}"), name, by)
        pipe.execute()
    except redis.RedisError:
        logger.warning("metrics: could not count %s (Redis unreachable)", name)


def record_error(text: str, company_id: int | None = None) -> None:
    increment("errors", company_id)
    entry = json.dumps({"error": text[:500], "at": timezone.now().isoformat()})
    try:
        client = coordination.redis_client()
        client.set(coordination.key(_LAST_ERROR), entry)
        if company_id is not None:
            client.set(coordination.key(f"{_LAST_ERROR}:{company_id}"), entry)
    except redis.RedisError:
        logger.warning("metrics: could not record the last error (Redis unreachable)")


def counters(company_id: int | None = None) -> dict:
    """Counters (all zero when none yet) and the last error, of one company or of all."""
    suffix = f":{company_id}" if company_id is not None else ""
    try:
        client = coordination.redis_client()
        raw = client.hgetall(coordination.key(_COUNTS + suffix))
        last_error = client.get(coordination.key(_LAST_ERROR + suffix))
    except redis.RedisError:
        logger.warning("metrics: counters unavailable (Redis unreachable)")
        raw, last_error = {}, None
    values = {name: int(raw.get(name.encode(), 0)) for name in COUNTERS}
    values["last_error"] = json.loads(last_error) if last_error else None
    return values
