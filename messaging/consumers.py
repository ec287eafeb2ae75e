"""The one WebSocket endpoint, /ws/. The user comes from the session cookie or an API token
(`?token=` for non-browser clients), never from the URL path."""

import json
import logging
from functools import cached_property
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper

from accounts.models import ApiToken

from .events import company_group, user_group
from .realtime import hub

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401


class RealtimeConsumer(AsyncWebsocketConsumer):
    # Events arrive through messaging.realtime's per-process hub, not a channel layer
    # (no per-socket Redis channel to poll).
    channel_layer_alias = "__no_channel_layer__"

    async def connect(self):
        self.user = None
        self.joined: list[str] = []
        logger.info("ws: connection attempt")
        user = await self._authenticate()
        # Accept first even when refusing: a close before accept reaches the browser as a bare
        # 403/1006, while 4401 tells the client to log in rather than retry.
        await self.accept()
        if user is None or not user.company_id:
            logger.info("ws: rejected unauthenticated connection")
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.joined = [user_group(user.pk), company_group(user.company_id)]
        await hub().join(self, self.joined)
        logger.info("ws: accepted user=%s", user.pk)
        await self.send(text_data=json.dumps({"event": "welcome", "data": {"user_id": user.pk}}))

    async def disconnect(self, code):
        if self.joined:
            hub().leave(self, self.joined)
        logger.info("ws: disconnected user=%s code=%s", getattr(self.user, "pk", None), code)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            content = json.loads(text_data or "")
        except ValueError:
            return
        event = content.get("event") if isinstance(content, dict) else None
        logger.info("ws: received event=%s user=%s", event, getattr(self.user, "pk", None))
        if event == "ping":
            await self.send(text_data='{"event": "pong"}')

    async def push(self, text: str) -> None:
        """Called by the hub, in its listener, with an already-encoded event for this socket."""
        await self._event_send({"type": "websocket.send", "text": text})

    @cached_property
    def _event_send(self):
        """The server's send, without channels' session wrapper: it looks at the session on
        every frame (to save it on HTTP responses only), a tenth of the cost of a fan-out to
        1,000 sockets. Pushed events never touch the session."""
        wrapper = getattr(self.base_send, "__self__", None)
        if isinstance(wrapper, InstanceSessionWrapper):
            return wrapper.real_send
        return self.base_send

    async def _authenticate(self):
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token:
            return await database_sync_to_async(ApiToken.authenticate)(token)
        user = self.scope.get("user")  # from the session cookie (AuthMiddlewareStack)
        return user if user is not None and user.is_authenticated else None
