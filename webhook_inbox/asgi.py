"""The WhatsApp Cloud webhook's fast path, in front of Django: a signed delivery for a known,
active Cloud number is stored in the inbox from the event loop (an async psycopg pool, one
INSERT) and answered 200 without entering Django's request handling, whose sync views run one
at a time per process. Everything else — unknown numbers, bad signatures, bodies that are not a
delivery, the verification GET — is handed to Django unchanged (the body replayed), which
answers exactly as channels_integrations/whatsapp/webhooks.py says.

A number's secret and state are cached here for WEBHOOK_FAST_PATH_CACHE_SECONDS: a number
turned off or given a new app secret is seen by the fast path within that time."""

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)

PATH = re.compile(r"^/webhooks/whatsapp/([0-9a-fA-F-]{36})/$")
INSERT = (
    "INSERT INTO webhook_inbox_delivery (company_id, source, source_id, body, attempts,"
    " last_error) VALUES (%s, 'whatsapp_cloud', %s, %s, 0, '')"
)


@dataclass(frozen=True)
class Target:
    number_id: int
    company_id: int
    secret: str
    expires: float


def _load_target(number_uuid: str) -> Target | None:
    from django.db import connection

    from channels_integrations.models import WhatsAppNumber

    try:
        number = WhatsAppNumber.objects.filter(
            uuid=number_uuid, provider=WhatsAppNumber.Provider.CLOUD
        ).first()
    finally:
        connection.close()  # a pool thread, not a request: nothing else closes it
    if (
        number is None
        or not number.is_active
        or number.status == WhatsAppNumber.Status.DELETING
        or not number.cloud_app_secret
    ):
        return None
    expires = time.monotonic() + settings.WEBHOOK_FAST_PATH_CACHE_SECONDS
    return Target(number.pk, number.company_id, number.cloud_app_secret, expires)


class WebhookFastPath:
    def __init__(self, app):
        self.app = app
        self.targets: dict[str, Target] = {}
        self.pool = None
        self.pool_lock: asyncio.Lock | None = None
        self.kick_pending = False
        self.last_kick = 0.0

    async def __call__(self, scope, receive, send):
        match = (
            PATH.match(scope.get("path", ""))
            if scope["type"] == "http" and scope.get("method") == "POST"
            else None
        )
        if match is None:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                break  # Django answers what is too large
        if not more and await self._store(match.group(1).lower(), scope, body):
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            })  # fmt: skip
            await send({"type": "http.response.body", "body": b'{"accepted": true}'})
            return

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        return await self.app(scope, replay, send)

    async def _store(self, number_uuid: str, scope, body: bytes) -> bool:
        """True when stored (the caller answers 200); False: Django decides."""
        from channels_integrations.whatsapp import cloud

        target = self.targets.get(number_uuid)
        if target is None or target.expires < time.monotonic():
            target = await sync_to_async(_load_target, thread_sensitive=False)(number_uuid)
            if target is None:
                self.targets.pop(number_uuid, None)
                return False
            self.targets[number_uuid] = target
        headers = dict(scope.get("headers") or ())
        signature = headers.get(b"x-hub-signature-256", b"").decode("latin-1")
        if not cloud.signature_is_valid(body, signature, target.secret):
            return False
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return False
        if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
            return False
        pool = await self._pool()
        async with pool.connection() as conn:
            await conn.execute(INSERT, [target.company_id, target.number_id, body])
        self._kick()
        return True

    async def _pool(self):
        if self.pool is None:
            from django.db import connection
            from psycopg_pool import AsyncConnectionPool

            self.pool_lock = self.pool_lock or asyncio.Lock()
            async with self.pool_lock:
                if self.pool is None:
                    params = connection.get_connection_params()
                    params.pop("cursor_factory", None)
                    params.pop("context", None)
                    params.pop("pool", None)
                    pool = AsyncConnectionPool(
                        kwargs={**params, "autocommit": True},
                        min_size=1,
                        max_size=settings.WEBHOOK_FAST_PATH_POOL_SIZE,
                        open=False,
                    )
                    await pool.open()
                    self.pool = pool
        return self.pool

    def _kick(self) -> None:
        """Wake a drainer (webhook_inbox.services.kick) at most every 50 ms per process; a
        delivery stored meanwhile is covered by the kick scheduled for the end of the 50 ms."""
        if self.kick_pending:
            return
        loop = asyncio.get_running_loop()
        wait = self.last_kick + 0.05 - time.monotonic()
        self.kick_pending = True

        def fire():
            from . import services

            self.last_kick = time.monotonic()
            self.kick_pending = False
            loop.run_in_executor(None, services.kick)

        if wait > 0:
            loop.call_later(wait, fire)
        else:
            fire()
