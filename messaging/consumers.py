"""The one WebSocket endpoint, /ws/. The user comes from the session cookie or an API token
(`?token=` for non-browser clients), never from the URL path."""

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache, cached_property
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.conf import settings
from django.db import close_old_connections
from django.utils.translation import get_supported_language_variant
from django.utils.translation.trans_real import parse_accept_lang_header

from accounts import presence, revocation
from accounts.models import User
from accounts.selectors import socket_identity

from . import events
from .events import (
    all_conversations_group,
    company_group,
    conversation_group,
    presence_group,
    user_group,
)
from .realtime import hub

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_SERVER_ERROR = 1011
COOKIE = settings.SESSION_COOKIE_NAME
MAX_FRAME_BYTES = 64 * 1024  # clients send pings; anything bigger is not ours to read
# Ephemeral signals a client sends about the conversation it has open: the least time between
# two of one kind from one socket (the browser sends typing at most every 3 s, viewing every
# 20 s and when a colleague arrives); faster ones are dropped, as is everything past SIGNAL_BUDGET per SIGNAL_WINDOW.
SIGNAL_INTERVALS = {"conversation.typing": 2.0, "conversation.viewing": 1.0}
SIGNAL_BUDGET = 20
SIGNAL_WINDOW = 10.0
CHECKED_CONVERSATIONS = 64  # per socket: conversations known to be the user's company's


def _may_open(user, conversation_id: int) -> bool:
    from .models import Conversation

    return Conversation.objects.filter(pk=conversation_id, company_id=user.company_id).exists()


def _off_loop(function):
    """Presence talks to Redis (a pool thread, not the one for the ORM); publishing a change
    asks the database connection whether a transaction is open, so the thread gives its
    connection back afterwards (with DB_POOL_MAX_SIZE, a pool thread kept it for good)."""

    def call(*args):
        try:
            return function(*args)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)


class RealtimeConsumer(AsyncWebsocketConsumer):
    """Events arrive through messaging.realtime's per-process hub (one Redis subscription per
    process); the Channels layer carries only control messages to this socket: access revoked
    (accounts.revocation)."""

    user = None
    language = ""  # set on connect (socket_language)
    joined: list[str] = ()
    auth_groups: list[str] = ()
    watching = ""  # the group of the conversation this socket has open

    async def connect(self):
        self.user = None
        self.joined = []
        self.watching = ""
        self.last_signal: dict[tuple[str, int], float] = {}
        self.checked: dict[int, bool] = {}
        self.budget_started, self.budget_used = 0.0, 0
        logger.info("ws: connection attempt")
        user = await self._authenticate()
        # Accept first even when refusing: a close before accept reaches the browser as a bare
        # 403/1006, while 4401 tells the client to log in rather than retry.
        await self.accept()
        if user is not None and user.company_id and not User.company.is_cached(user):
            sees_all = await database_sync_to_async(_admitted)(user)
        else:  # the user came with their company (one query): no second query, no thread hop
            sees_all = _admitted(user)
        if sees_all is None:
            logger.info("ws: rejected unauthenticated connection")
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.language = socket_language(user, self.scope)  # the words in events (hub)
        await self._join_auth_groups()
        self.joined = [user_group(user.pk), company_group(user.company_id)]
        if sees_all:
            self.joined.append(all_conversations_group(user.company_id))
        if self._query("presence") == "1":  # the browser asks; scripts and tests need not
            self.joined.append(presence_group(user.company_id))
        await hub().join(self, self.joined)
        logger.info("ws: accepted user=%s", user.pk)
        await self.send(text_data=json.dumps({"event": "welcome", "data": {"user_id": user.pk}}))
        await _off_loop(presence.socket_connected)(user, self.channel_name)

    async def disconnect(self, code):
        if self.watching and self.user is not None:  # colleagues drop "X is viewing" now
            conversation_id = int(self.watching.rsplit(".", 1)[1])
            events.publish_ephemeral(
                "conversation.left",
                {"conversation_id": conversation_id, "user_id": self.user.pk},
                conversation_id=conversation_id,
            )
        if self.user is not None:
            await _off_loop(presence.socket_closed)(self.user, self.channel_name)
        if self.joined:
            hub().leave(self, self.joined)
        for group in self.auth_groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                logger.warning("ws: could not leave %s (Redis down?)", group)
        logger.info("ws: disconnected user=%s code=%s", getattr(self.user, "pk", None), code)

    async def receive(self, text_data=None, bytes_data=None):
        if not text_data or len(text_data) > MAX_FRAME_BYTES:
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # not JSON, or nested past the decoder's limit
            return
        event = content.get("event") if isinstance(content, dict) else None
        if not isinstance(event, str):
            return
        # %r: a client's text never forges a log line (newlines come out escaped).
        logger.info("ws: received event=%r user=%s", event[:64], getattr(self.user, "pk", None))
        if event == "ping":
            if self.user is not None:  # the heartbeat of presence
                await _off_loop(presence.socket_connected)(self.user, self.channel_name)
            await self.send(text_data='{"event": "pong"}')
        elif event in SIGNAL_INTERVALS and self.user is not None:
            await self._signal(event, content.get("data"))

    async def _signal(self, event: str, data) -> None:
        """Typing or viewing in a conversation: checked to be the user's company's (once per
        socket), throttled, then sent to the sockets that have that conversation open (this
        one joins them). Never stored."""
        conversation_id = data.get("conversation_id") if isinstance(data, dict) else None
        if type(conversation_id) is not int or conversation_id <= 0:
            return
        now = time.monotonic()
        key = (event, conversation_id)
        if now - self.last_signal.get(key, -1e9) < SIGNAL_INTERVALS[event]:
            return  # a flood: dropped
        if now - self.budget_started > SIGNAL_WINDOW:
            self.budget_started, self.budget_used = now, 0
        if self.budget_used >= SIGNAL_BUDGET:
            return
        self.budget_used += 1
        self.last_signal[key] = now
        allowed = self.checked.get(conversation_id)
        if allowed is None:
            allowed = await database_sync_to_async(_may_open)(self.user, conversation_id)
            if len(self.checked) >= CHECKED_CONVERSATIONS:
                self.checked.clear()
            self.checked[conversation_id] = allowed
        if not allowed:
            return
        await self._watch(conversation_id)
        events.publish_ephemeral(
            event,
            {
                "conversation_id": conversation_id,
                "user_id": self.user.pk,
                "name": self.user.display_name,
            },
            conversation_id=conversation_id,
        )

    async def _watch(self, conversation_id: int) -> None:
        """This socket has `conversation_id` open (one at a time): it hears its signals."""
        group = conversation_group(conversation_id)
        if self.watching == group:
            return
        if self.watching:
            hub().leave(self, [self.watching])
            self.joined = [name for name in self.joined if name != self.watching]
        self.watching = group
        self.joined = [*self.joined, group]
        await hub().join(self, [group])

    async def dispatch(self, message):
        """Whatever fails while handling a frame closes this socket and takes it out of the
        hub (a dead socket left there would keep receiving every event).

        Unlike channels' own dispatch, no `aclose_old_connections()` before each handler: that
        is a hop to the ORM thread for every frame (each typing signal, each ping), and here
        every database call already closes its connection itself (database_sync_to_async,
        _off_loop, _on_handshake_thread)."""
        handler = getattr(self, get_handler_name(message), None)
        try:
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception("ws: consumer failed user=%s", getattr(self.user, "pk", None))
            if self.joined:
                hub().leave(self, self.joined)
                self.joined = []
            await self.close(code=CLOSE_SERVER_ERROR)
            raise StopConsumer() from None

    async def auth_revoked(self, event):
        """The token, session or user of this socket lost its access: close it (4401)."""
        logger.info("ws: access revoked user=%s; closing", getattr(self.user, "pk", None))
        if self.user is not None:
            await _off_loop(presence.socket_closed)(self.user, self.channel_name)
            self.user = None
        if self.joined:
            hub().leave(self, self.joined)
            self.joined = []
        await self.close(code=revocation.CLOSE_REVOKED)

    async def auth_reconnect(self, event):
        """What this socket may hear changed (role, the company's visibility setting): close it
        with a code the client reconnects after, joining the groups it now may."""
        logger.info("ws: access changed user=%s; reconnect", getattr(self.user, "pk", None))
        if self.joined:
            hub().leave(self, self.joined)
            self.joined = []
        await self.close(code=revocation.CLOSE_RECONNECT)

    async def _join_auth_groups(self) -> None:
        groups = revocation.groups_for(
            self.user.pk,
            token_id=self.token_id,
            session_key=self.session_key,
            company_id=self.user.company_id,
        )
        # Side by side: a reconnect storm waits one Redis round trip per socket, not four.
        outcomes = await asyncio.gather(
            *(self.channel_layer.group_add(group, self.channel_name) for group in groups),
            return_exceptions=True,
        )
        joined = []
        for group, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # revocation waits for the next connect
                logger.warning("ws: could not join %s (Redis down?)", group)
            else:
                joined.append(group)
        self.auth_groups = joined

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

    def _query(self, name: str) -> str | None:
        return parse_qs(self.scope.get("query_string", b"").decode()).get(name, [None])[0]

    async def _authenticate(self):
        """The user of the token or the session cookie: one database query, on the handshake
        threads (not channels' one thread for the ORM, where a reconnect storm would queue
        every handshake behind the one before)."""
        raw = self._query("token") or ""
        session_key = "" if raw else self.scope.get("cookies", {}).get(COOKIE, "")
        self.token_id, self.session_key = None, ""
        if not raw and not session_key:
            return None
        address = (self.scope.get("client") or [""])[0] or ""
        user, self.token_id, self.session_key = await _on_handshake_thread(
            socket_identity, raw, session_key, address
        )
        return user


async def _on_handshake_thread(function, *args):
    """`function(*args)` on one of WS_AUTH_THREADS threads, its database connection handled
    as channels' database_sync_to_async does (closed or returned to the pool after)."""

    def call():
        close_old_connections()
        try:
            return function(*args)
        finally:
            close_old_connections()

    return await asyncio.get_running_loop().run_in_executor(_handshake_pool(), call)


@cache
def _handshake_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.WS_AUTH_THREADS, thread_name_prefix="ws-auth")


def socket_language(user, scope) -> str:
    """The language a page would use for this user: their own choice, else the browser's
    (the language cookie, then Accept-Language), else the default (as accounts.middleware)."""
    candidates = [user.language] if user.language else []
    cookie = (scope.get("cookies") or {}).get(settings.LANGUAGE_COOKIE_NAME)
    if cookie:
        candidates.append(cookie)
    headers = dict(scope.get("headers") or [])
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    candidates += [code for code, _quality in parse_accept_lang_header(accept) if code != "*"]
    for code in candidates:
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def _admitted(user) -> bool | None:
    """None: this user may not have a socket (no user, no company, or an inactive company);
    else whether they see every conversation of their company."""
    if user is None or not user.company_id or not user.is_active:
        return None
    if not user.company.is_active:
        return None
    return user.sees_all_conversations


class NotFoundConsumer(AsyncWebsocketConsumer):
    """A WebSocket to a path we do not serve: the handshake is refused (403), as for a page
    that does not exist, instead of a routing error."""

    channel_layer_alias = "__no_channel_layer__"

    async def connect(self):
        await self.close()
