"""Realtime fan-out: events go out on one Redis pub/sub channel, one subscription per server
process (under load several events share one Redis message, see COALESCE_SECONDS).

Channels' groups cost one Redis operation per connection per event (RedisChannelLayer broke
at 1,000 clients on this machine; the pub/sub layer held but at ~5x the latency of a bare
broadcast). Here a publisher sends each event once to one Redis pub/sub channel; every daphne
process subscribes once, encodes the event once, and writes it to its own sockets whose groups
(`user.<id>`, `company.<id>`) match. Cost per event: one Redis message per process.
"""

import asyncio
import atexit
import json
import logging
import os
import queue
import random
import signal
import sys
import threading
import time
import weakref
from collections import defaultdict

import orjson
import redis
import redis.asyncio as aioredis
from django.conf import settings

from crm import coordination

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- publishing (sync)


def _publisher_client() -> redis.Redis:
    return coordination.redis_client(timeout=2)  # a publish that waits longer is moot


# On the wire: one Redis message carries a JSON list of events in order, each
# {"groups": [...], "payload": {"event": ..., "data": ...}}; an ephemeral signal's payload also
# has "except_user" (the user it is about: the hub skips their sockets, never sends it on); a
# payload whose data carries words a person reads (status labels) also has "words": {language:
# {key: text}} (messaging.events), which the hub turns into each socket's language and never
# sends on.


def _encode(groups: list[str], payload: dict) -> str:
    """orjson (an inbound message's two events: ~5 µs against json's ~40 on this machine);
    what orjson refuses or writes differently (a key that is not a string, dates and times)
    goes through json, so an event json could encode never fails here."""
    event = {"groups": groups, "payload": payload}
    try:
        return orjson.dumps(event, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except orjson.JSONEncodeError:
        return json.dumps(event)


def _wire(encoded_events: list[str]) -> str:
    return f"[{','.join(encoded_events)}]"


def decode(raw: bytes | str) -> list[dict]:
    """The events of one Redis message, in order (the hub; tests that listen on Redis)."""
    return json.loads(raw)


def publish_now(groups: list[str], payload: dict) -> None:
    """Send one event to every process, now (services use messaging.events.publish, which
    hands events to the publisher thread after commit)."""
    _publisher_client().publish(settings.REALTIME_CHANNEL, _wire([_encode(groups, payload)]))


# Under load the publisher sends at most once per this many seconds, everything waiting in
# one Redis message: a Redis round trip per event cost the writers' thread its GIL and the
# machine's cores (measured: it took ~0.4 ms off every inbound message). The first event
# after a quiet spell leaves at once.
COALESCE_SECONDS = 0.005


class _Publisher:
    """This process's publisher thread: events handed to it after their commit leave in
    order, everything waiting in one round trip to Redis, off the writer's path (a write
    returns without waiting for Redis; a publish that fails is logged, as before)."""

    def __init__(self):
        self.queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.pid = os.getpid()
        self.idle = threading.Event()
        self.idle.set()
        self.thread = threading.Thread(target=self._run, name="realtime-publisher", daemon=True)
        self.thread.start()

    def put(self, message: str) -> None:
        self.idle.clear()
        self.queue.put(message)

    def _run(self) -> None:
        last_sent = 0.0
        while True:
            pending = [self.queue.get()]
            linger = last_sent + COALESCE_SECONDS - time.monotonic()
            if linger > 0:  # busy: let what comes meanwhile join this message
                time.sleep(linger)
            while True:
                try:
                    pending.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                _publisher_client().publish(settings.REALTIME_CHANNEL, _wire(pending))
            except Exception:
                logger.exception("realtime: publish failed (%d events)", len(pending))
            last_sent = time.monotonic()
            if self.queue.empty():
                self.idle.set()

    def flush(self, timeout: float = 5.0) -> bool:
        return self.idle.wait(timeout)


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def _background() -> _Publisher:
    global _publisher
    publisher = _publisher
    if publisher is None or publisher.pid != os.getpid():  # none yet, or a forked child
        with _publisher_lock:
            if _publisher is None or _publisher.pid != os.getpid():
                _publisher = _Publisher()
            publisher = _publisher
    return publisher


def publish_soon(groups: list[str], payload: dict) -> None:
    """Hand one event to this process's publisher thread (callers: messaging.events, after
    commit)."""
    _background().put(_encode(groups, payload))


def flush(timeout: float = 5.0) -> bool:
    """Wait until this process's handed-over events have left (tests, shutdown)."""
    return _publisher is None or _publisher.pid != os.getpid() or _publisher.flush(timeout)


atexit.register(flush, 2.0)


# ---------------------------------------------------------------- fan-out (async, per process)


WRITE_BATCH = 100  # sockets written per turn of the event loop during a fan-out
# daphne (autobahn) sends only 1000 and 3000-4999: 4012 stands for 1012 "service restart".
CLOSE_SERVICE_RESTART = 4012


class Hub:
    """The sockets of this process by group, fed by one Redis subscription."""

    _restart_notice_installed = False

    def __init__(self):
        self.members: dict[str, set] = defaultdict(set)
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def join(self, socket, groups: list[str]) -> None:
        for group in groups:
            self.members[group].add(socket)
        if self.task is None or self.task.done():
            self.ready.clear()
            self.task = asyncio.get_running_loop().create_task(self._listen())
            self._notice_restarts()
        await self.ready.wait()

    def leave(self, socket, groups: list[str]) -> None:
        for group in groups:
            members = self.members.get(group)
            if members is not None:
                members.discard(socket)
                if not members:
                    del self.members[group]

    async def deliver(self, raw: bytes) -> int:
        """Write one Redis message's events to the sockets they are for; sockets written."""
        return sum([await self._deliver(event) for event in decode(raw)])

    async def _deliver(self, event: dict) -> int:
        targets = set()
        for group in event["groups"]:
            targets |= self.members.get(group, set())
        payload = event["payload"]
        if (skipped := payload.pop("except_user", None)) is not None:
            targets = {
                s for s in targets if getattr(getattr(s, "user", None), "pk", None) != skipped
            }
        if not targets:
            return 0
        words = payload.pop("words", None)
        if not words:
            await self._write(targets, json.dumps(payload))  # encoded once for every socket
        else:
            # Words a person reads, in each socket's language: encoded once per language.
            by_language = defaultdict(list)
            for socket in targets:
                by_language[getattr(socket, "language", "")].append(socket)
            for language, sockets in by_language.items():
                data = {**payload["data"], **words.get(language, {})}
                await self._write(sockets, json.dumps({**payload, "data": data}))
        logger.info("ws: sent event=%s sockets=%d", event["payload"].get("event"), len(targets))
        return len(targets)

    @staticmethod
    async def _write(sockets, text: str) -> None:
        """Hand the frame to every socket in turn, here, in the listener: no task per socket
        (1,000 sockets meant 1,000 tasks per event), and events keep their order. A socket's
        send only queues bytes in the server's transport, so one slow client stalls nobody.
        Every WRITE_BATCH sockets the loop gets a turn: the server flushes what is queued
        (the first clients hear sooner) and pings and requests are not held up."""
        for count, socket in enumerate(sockets, 1):
            try:
                await socket.push(text)
            except Exception:  # a socket closing under us must not cost the others the event
                logger.debug("realtime: push failed", exc_info=True)
            if count % WRITE_BATCH == 0:
                await asyncio.sleep(0)

    async def _listen(self) -> None:
        attempt = 0
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL, health_check_interval=15)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(settings.REALTIME_CHANNEL)
                if attempt:
                    logger.info("realtime: resubscribed after %d attempts", attempt)
                    await self._tell_everyone_to_resync()
                attempt = 0
                self.ready.set()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        await self.deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: back off, resubscribe, ask for resync
                attempt += 1
                delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())  # noqa: S311
                logger.warning(
                    "realtime: subscription lost (%s); retry in %.1fs",
                    exc.__class__.__name__,
                    delay,
                )
                self.ready.set()  # sockets still connect; they resync when we are back
                await asyncio.sleep(delay)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:  # noqa: S110 (closing a dead connection)
                    pass

    def _notice_restarts(self) -> None:
        """Under daphne (Twisted), SIGTERM would drop every socket without a close frame (the
        browser sees 1006 and backs off as after a failure). Instead: close each with 4012
        (our "service restart"; realtime.js reconnects after a short random delay, to another
        process), give the frames a moment to leave, then stop as daphne would."""
        if self._restart_notice_installed or "twisted.internet.reactor" not in sys.modules:
            return
        from twisted.internet import reactor

        if not getattr(reactor, "running", False):  # imported, but not what serves us
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(self._restart()))
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            return
        self._restart_notice_installed = True

    async def _restart(self) -> None:
        from twisted.internet import reactor, tcp

        # Stop accepting first, so the sockets told to reconnect land on another process.
        for reader in list(reactor.getReaders()):
            if isinstance(reader, tcp.Port):
                reader.stopListening()
        sockets = {socket for members in self.members.values() for socket in members}
        logger.info("ws: stopping; telling %d sockets to reconnect", len(sockets))
        for count, socket in enumerate(sockets, 1):
            try:
                await socket.close(code=CLOSE_SERVICE_RESTART)
            except Exception:  # noqa: S110 (a socket already going)
                pass
            if count % WRITE_BATCH == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0.5)
        reactor.stop()

    async def _tell_everyone_to_resync(self) -> None:
        text = json.dumps({"event": "resync", "data": {}})
        await self._write({socket for members in self.members.values() for socket in members}, text)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The hub of the running event loop (one per daphne process; one per test loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]
