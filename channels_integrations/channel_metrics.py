"""Counters of the long-lived channels (WhatsApp, Telegram, email) for /metrics, shared by
every process through one Redis hash per channel (like whatsapp.metrics). A counter that
cannot be written (Redis down) is logged and skipped: metrics never fail the work."""

import logging

import redis

from crm import coordination

logger = logging.getLogger(__name__)

CHANNELS = ("whatsapp", "telegram", "email")
COUNTERS = ("messages_sent", "messages_received", "errors", "reconnect_attempts")


def channel_of(kind: str) -> str:
    """ "telegram:account" -> "telegram" (a channel name stays itself)."""
    return kind.split(":", 1)[0]


def _hash(channel: str) -> str:
    return coordination.key(f"conn-metrics:{channel}")


def increment(kind: str, name: str, by: int = 1) -> None:
    try:
        coordination.redis_client().hincrby(_hash(channel_of(kind)), name, by)
    except redis.RedisError:
        logger.warning("metrics: could not count %s %s (Redis unreachable)", kind, name)


def counters(channel: str) -> dict[str, int]:
    try:
        raw = coordination.redis_client().hgetall(_hash(channel))
    except redis.RedisError:
        raw = {}
    return {name: int(raw.get(name.encode(), 0)) for name in COUNTERS}
