"""GET /health: 200 with each dependency "ok", or 503 naming what is down. Always free, no login."""

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means "down"; the reason goes to the log
        logger.warning("health: database down: %s", exc.__class__.__name__)
        return "down"


def check_redis() -> str:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        client.close()
        return "ok"
    except Exception as exc:
        logger.warning("health: redis down: %s", exc.__class__.__name__)
        return "down"


@never_cache
@require_GET
def health(request):
    checks = {"database": check_database(), "redis": check_redis()}
    down = [name for name, state in checks.items() if state != "ok"]
    body = dict(checks, status="ok" if not down else "down", down=down)
    return JsonResponse(body, status=503 if down else 200)
