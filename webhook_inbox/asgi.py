"""The webhook fast path, in front of Django: a signed delivery for a known, active WhatsApp
Cloud number, Messenger Page or Instagram account is stored in the inbox from the event loop
and answered 200 without entering Django's request handling, whose sync views run one at a time
per process. Everything else — unknown targets, bad signatures, bodies that are not a delivery,
the verification GET, a failed INSERT — is handed to Django unchanged (the body replayed), which
answers exactly as channels_integrations/whatsapp/webhooks.py and meta/webhooks.py say.

Group commit: requests arriving within WEBHOOK_FAST_PATH_GROUP_SECONDS of each other (default
0: those of one event-loop turn) are stored by one multi-row INSERT, one commit; each is
answered 200 only after that commit (durable before the 200). At most
WEBHOOK_FAST_PATH_FLUSHERS such INSERTs run at once per process (default 1); what arrives
meanwhile joins the next one, so the busier it gets, the larger each commit, with no timer
adding to a quiet moment's latency. (Measured in-process with 64 senders: 22-32 µs of CPU per
request and 16,000-23,000 /s, against 39-49 µs and 6,700-8,200 /s with a 3 ms timer and two
INSERTs at once.) nginx sends all of a target's webhooks to the same process (deploy/nginx.conf,
`hash $uri`), so they meet in that process's groups.

Each INSERT goes over a lane: a PostgreSQL connection kept between groups (a web process holds
WEBHOOK_FAST_PATH_FLUSHERS of them), its statement prepared once. A lane is driven by libpq's
non-blocking calls from event-loop callbacks, not by a task awaiting psycopg: the callback that
reads a commit's answer answers its group and sends the next one at once, where a woken task
waited behind every request step queued in that loop turn (1.3 ms of a 2.1 ms group cycle at
12,000 /s; README, "The web tier and webhooks, measured"). A lane that fails (PostgreSQL
restarted, the backend terminated, the INSERT refused) is closed, its group and what waited
handed to Django, and the next request opens a new one.

A target's secret and state are cached here for WEBHOOK_FAST_PATH_CACHE_SECONDS: a number or
account turned off or given a new app secret is seen by the fast path within that time."""

import asyncio
import logging
import re
import struct
import time
from dataclasses import dataclass

import orjson
import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from psycopg import AsyncConnection, pq

from channels_integrations.signatures import hub_signature_is_valid

logger = logging.getLogger(__name__)

PATH = re.compile(r"^/webhooks/(whatsapp|meta)/([0-9a-fA-F-]{36})/$")
# One statement, one commit for the whole group; ids in arrival order (the drain's order).
# Prepared at the protocol level (as psycopg prepares; PgBouncer 1.21+ in transaction mode
# keeps such statements), its parameters in binary: the bodies go as they are.
STATEMENT = b"switchboard_webhook_inbox_insert"
INSERT = (
    b"INSERT INTO webhook_inbox_delivery (company_id, source, source_id, body, attempts,"
    b" last_error) SELECT c, s, i, b, 0, '' FROM unnest($1::bigint[], $2::text[],"
    b" $3::bigint[], $4::bytea[]) WITH ORDINALITY AS t(c, s, i, b, n) ORDER BY n"
)
INT8_OID, TEXT_OID, BYTEA_OID = 20, 25, 17
BINARY = (1, 1, 1, 1)
# PostgreSQL's binary array format (array_send): dimensions, has NULLs, element type, then the
# one dimension's length and lower bound; each element is its length and its bytes.
ARRAY_HEADER = struct.Struct("!iiIii")
ELEMENT_LENGTH = struct.Struct("!i")
INT8_ELEMENT = struct.Struct("!iq")


def _array(oid: int, items: list[bytes]) -> bytes:
    parts = [ARRAY_HEADER.pack(1, 0, oid, len(items), 1)]
    for item in items:
        parts += (ELEMENT_LENGTH.pack(len(item)), item)
    return b"".join(parts)


def _int8_array(values: list[int]) -> bytes:
    return ARRAY_HEADER.pack(1, 0, INT8_OID, len(values), 1) + b"".join(
        [INT8_ELEMENT.pack(8, value) for value in values]
    )


def _group_parameters(rows: list[tuple]) -> list[bytes]:
    """The INSERT's four arrays: companies, sources, source ids, bodies."""
    return [
        _int8_array([row[0] for row in rows]),
        _array(TEXT_OID, [row[1].encode() for row in rows]),
        _int8_array([row[2] for row in rows]),
        _array(BYTEA_OID, [row[3] for row in rows]),
    ]


def _fail(group: list, exc: BaseException) -> None:
    for _row, done in group:
        if not done.done():
            done.set_exception(exc)


class _Lane:
    """A kept PostgreSQL connection (autocommit) storing groups one after another; `group` is
    what its statement in flight answers (empty while it prepares or idles)."""

    __slots__ = ("conn", "pgconn", "fd", "group")

    def __init__(self, conn: AsyncConnection):
        self.conn, self.pgconn, self.fd = conn, conn.pgconn, conn.pgconn.socket
        self.group: list = []


@dataclass(frozen=True)
class Target:
    source: str  # webhook_inbox.models.Source
    source_id: int
    company_id: int
    secret: str
    expires: float


def _cloud_target(target_uuid: str) -> Target | None:
    from channels_integrations.models import WhatsAppNumber

    number = WhatsAppNumber.objects.filter(
        uuid=target_uuid, provider=WhatsAppNumber.Provider.CLOUD
    ).first()
    if (
        number is None
        or not number.is_active
        or number.status == WhatsAppNumber.Status.DELETING
        or not number.cloud_app_secret
    ):
        return None
    expires = time.monotonic() + settings.WEBHOOK_FAST_PATH_CACHE_SECONDS
    return Target("whatsapp_cloud", number.pk, number.company_id, number.cloud_app_secret, expires)


def _meta_target(target_uuid: str) -> Target | None:
    from channels_integrations.meta.models import InstagramAccount, MessengerPage

    for model, source in ((MessengerPage, "messenger"), (InstagramAccount, "instagram")):
        account = model.objects.filter(uuid=target_uuid).first()
        if account is not None:
            if not account.is_active or not account.app_secret:
                return None
            expires = time.monotonic() + settings.WEBHOOK_FAST_PATH_CACHE_SECONDS
            return Target(source, account.pk, account.company_id, account.app_secret, expires)
    return None


def _load_target(kind: str, target_uuid: str) -> Target | None:
    from django.db import connection

    try:
        return (_cloud_target if kind == "whatsapp" else _meta_target)(target_uuid)
    finally:
        connection.close()  # a pool thread, not a request: nothing else closes it


def _is_delivery(kind: str, body: bytes) -> bool:
    """What the Django view would store: for Cloud a JSON object with an `entry` list, for Meta
    any JSON (its view refuses only what is not JSON). Parsed by orjson (2 µs against json's 5
    for a delivery of 770 bytes): it accepts only what json accepts too, and what it refuses
    (NaN, another encoding than UTF-8, integers past 64 bits) goes to the view, which decides."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if kind == "meta":
        return True
    return isinstance(payload, dict) and isinstance(payload.get("entry"), list)


class WebhookFastPath:
    def __init__(self, app):
        self.app = app
        self.targets: dict[tuple[str, str], Target] = {}
        self.loading: dict[tuple[str, str], asyncio.Future] = {}
        self.idle: list[_Lane] = []  # connections with no group in flight
        self.lanes = 0  # connections open or opening (at most WEBHOOK_FAST_PATH_FLUSHERS)
        self.opening: set[asyncio.Task] = set()
        self.send_scheduled = False
        self.kick_pending = False
        self.last_kick = 0.0
        self.pending: list[tuple[tuple, asyncio.Future]] = []
        # The loop this process serves on, kept: asyncio.get_running_loop() makes a getpid()
        # system call on Python 3.11, 3% of the busy web process's samples when asked per request.
        self.loop: asyncio.AbstractEventLoop | None = None

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
        if not more and await self._store(match.group(1), match.group(2).lower(), scope, body):
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

    async def _store(self, kind: str, target_uuid: str, scope, body: bytes) -> bool:
        """True when stored and committed (the caller answers 200); False: Django decides."""
        target = await self._target(kind, target_uuid)
        if target is None:
            return False
        signature = next(
            (value for name, value in scope.get("headers") or () if name == b"x-hub-signature-256"),
            b"",
        ).decode("latin-1")
        if not hub_signature_is_valid(body, signature, target.secret):
            return False
        if not _is_delivery(kind, body):
            return False
        try:
            await self._commit((target.company_id, target.source, target.source_id, body))
        except Exception:
            # PostgreSQL refused or went away: Django's view tries once more and answers.
            logger.warning("webhook fast path: group INSERT failed", exc_info=True)
            return False
        return True

    async def _target(self, kind: str, target_uuid: str) -> Target | None:
        """The cached target; one load at a time per target (a burst to a cold cache waits
        for the one read instead of opening a database connection per request)."""
        key = (kind, target_uuid)
        target = self.targets.get(key)
        if target is not None and target.expires >= time.monotonic():
            return target
        loading = self.loading.get(key)
        if loading is None:
            load = sync_to_async(_load_target, thread_sensitive=False)(kind, target_uuid)
            loading = self.loading[key] = asyncio.ensure_future(load)
            try:
                target = await asyncio.shield(loading)
            finally:
                self.loading.pop(key, None)
            if target is None:
                self.targets.pop(key, None)
            else:
                self.targets[key] = target
            return target
        return await asyncio.shield(loading)

    async def _commit(self, row: tuple) -> None:
        """Returns once `row` is committed (with whatever arrived around it)."""
        loop = self.loop
        if loop is None or loop.is_closed():  # the first request (or a test's new loop)
            loop = self._serve_on(asyncio.get_running_loop())
        done = loop.create_future()
        self.pending.append((row, done))
        if not self.send_scheduled:
            if self.idle:
                self._schedule_send()
            elif self.lanes < settings.WEBHOOK_FAST_PATH_FLUSHERS:
                self.lanes += 1
                opening = loop.create_task(self._open_lane())
                self.opening.add(opening)  # the loop keeps only a weak reference to a task
                opening.add_done_callback(self.opening.discard)
        # A client gone away cancels only its own future: its row still goes in with the group.
        await done

    @property
    def in_flight(self) -> int:
        """Lanes opening or storing a group."""
        return self.lanes - len(self.idle)

    def _serve_on(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        """Lanes, timers and futures of a closed loop are of no use on a new one."""
        self.loop, self.idle, self.lanes, self.pending = loop, [], 0, []
        self.send_scheduled = self.kick_pending = False
        return loop

    def _schedule_send(self) -> None:
        """The group leaves at the end of this event-loop turn (or of the group window), with
        the requests read in the same turn."""
        self.send_scheduled = True
        window = settings.WEBHOOK_FAST_PATH_GROUP_SECONDS
        if window:
            self.loop.call_later(window, self._send_scheduled)
        else:
            self.loop.call_soon(self._send_scheduled)

    def _send_scheduled(self) -> None:
        self.send_scheduled = False
        if self.pending and self.idle:
            self._send(self.idle.pop())

    async def _open_lane(self) -> None:
        """A new connection whose first statement prepares the INSERT; its answer frees the
        lane for what waits."""
        try:
            lane = _Lane(await self._connect())
        except Exception as exc:
            self.lanes -= 1
            group, self.pending = self.pending, []
            _fail(group, exc)
            return
        try:
            lane.pgconn.send_prepare(STATEMENT, INSERT)
            self._sent(lane)
        except Exception as exc:
            self._lost(lane, exc)

    def _send(self, lane: _Lane) -> None:
        """One multi-row INSERT, one commit, sent without waiting for its answer."""
        group, self.pending = self.pending, []
        lane.group = group
        try:
            lane.pgconn.send_query_prepared(
                STATEMENT, _group_parameters([row for row, _ in group]), BINARY
            )
            self._sent(lane)
        except Exception as exc:
            self._lost(lane, exc)

    def _sent(self, lane: _Lane) -> None:
        if lane.pgconn.flush():  # more than the socket's buffer: the rest as it drains
            self.loop.add_writer(lane.fd, self._writable, lane)
        self.loop.add_reader(lane.fd, self._readable, lane)

    def _writable(self, lane: _Lane) -> None:
        try:
            if not lane.pgconn.flush():
                self.loop.remove_writer(lane.fd)
        except Exception as exc:
            self._lost(lane, exc)

    def _readable(self, lane: _Lane) -> None:
        """The answer, read as soon as the loop polls it; the group is answered and the lane
        takes what waits."""
        pgconn = lane.pgconn
        try:
            pgconn.consume_input()
            if pgconn.is_busy():
                return
            error = None
            while (result := pgconn.get_result()) is not None:
                if result.status != pq.ExecStatus.COMMAND_OK and error is None:
                    error = psycopg.DatabaseError(result.get_error_message())
        except Exception as exc:
            error = exc
        if error is not None:
            self._lost(lane, error)
            return
        self.loop.remove_reader(lane.fd)
        group, lane.group = lane.group, []
        if group:
            self._kick()
        for _row, done in group:
            if not done.done():
                done.set_result(None)
        if self.pending and not settings.WEBHOOK_FAST_PATH_GROUP_SECONDS:
            self._send(lane)
            return
        self.idle.append(lane)
        if self.pending and not self.send_scheduled:
            self._schedule_send()

    def _lost(self, lane: _Lane, exc: Exception) -> None:
        """A failed statement or connection: the connection is closed (its state unknown),
        its group and what waited are handed to Django (each request's view stores its own),
        and the next request opens a new lane."""
        self.loop.remove_reader(lane.fd)
        self.loop.remove_writer(lane.fd)
        lane.pgconn.finish()
        self.lanes -= 1
        group, lane.group, self.pending = lane.group + self.pending, [], []
        _fail(group, exc)

    async def _connect(self) -> AsyncConnection:
        """A new connection for a lane (Django's settings, autocommit, non-blocking)."""
        from django.db import connection

        params = connection.get_connection_params()
        for django_only in ("cursor_factory", "context", "pool"):
            params.pop(django_only, None)
        params["application_name"] = "switchboard-webhook-fast-path"
        conn = await AsyncConnection.connect(**params, autocommit=True)
        conn.pgconn.nonblocking = 1
        return conn

    async def close(self) -> None:
        """Closes the idle lanes' connections (tests; a process that exits closes them anyway)."""
        lanes, self.idle = self.idle, []
        self.lanes -= len(lanes)
        for lane in lanes:
            await lane.conn.close()

    def _kick(self) -> None:
        """Wake a drainer (webhook_inbox.services.kick) at most every 50 ms per process; a
        delivery stored meanwhile is covered by the kick scheduled for the end of the 50 ms."""
        if self.kick_pending:
            return
        loop = self.loop
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
