"""The one WebSocket endpoint, /ws/. The user comes from the session cookie or an API token
(`?token=` for non-browser clients), never from the URL path."""

import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.models import ApiToken

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401


def user_group(user_id) -> str:
    return f"user.{user_id}"


def company_group(company_id) -> str:
    return f"company.{company_id}"


class RealtimeConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.user = await self._authenticate()
        logger.info("ws: connection attempt")
        if self.user is None or not self.user.company_id:
            logger.info("ws: rejected unauthenticated connection")
            # Accept first: a close before accept reaches the browser as a bare 403/1006,
            # while 4401 tells the client to log in rather than retry.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.groups_joined = [user_group(self.user.pk), company_group(self.user.company_id)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        logger.info("ws: accepted user=%s", self.user.pk)
        await self.send_json({"event": "welcome", "data": {"user_id": self.user.pk}})

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        logger.info("ws: disconnected user=%s code=%s", getattr(self.user, "pk", None), code)

    async def receive_json(self, content, **kwargs):
        event = content.get("event") if isinstance(content, dict) else None
        logger.debug("ws: received event=%s user=%s", event, self.user.pk)
        if event == "ping":
            await self.send_json({"event": "pong"})

    async def realtime_event(self, message):
        """Group messages published by messaging.events.publish."""
        logger.debug("ws: sending event=%s user=%s", message["payload"]["event"], self.user.pk)
        await self.send_json(message["payload"])

    async def _authenticate(self):
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token:
            return await database_sync_to_async(ApiToken.authenticate)(token)
        user = self.scope.get("user")  # from the session cookie (AuthMiddlewareStack)
        return user if user is not None and user.is_authenticated else None
