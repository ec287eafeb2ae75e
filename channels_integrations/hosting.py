"""A connection host: hundreds of long-lived connections on one asyncio event loop.

`manage.py connection_host` runs one ConnectionHost. It advertises its capacity and load in
Redis (a heartbeat key that expires after CONNECTION_HOST_TTL), reads what the supervisor
assigned to it (channels_integrations.fleet) and holds exactly that:

- Telegram listeners run on the loop itself (Telethon is asyncio);
- WhatsApp sessions: neonize's blocking connect() runs on a bounded pool of threads (it only
  waits there while the Go client works), everything else on the loop;
- IMAP IDLE: one bounded pool thread per mailbox (IMAPClient is blocking).

What each connection used to do for itself, the host does once for all of them: lease
renewals (one Redis pipeline), row heartbeats (one fenced UPDATE per kind), "is it still
wanted" (one query per kind), and commands (one blocking pop on the host's doorbell list
instead of one Redis connection in BLPOP per listener). Database work runs on a small pool
of threads with persistent connections (CONN_MAX_AGE), not one connection per listener.
Every connection still takes the fenced lease (channels_integrations.connections): exactly
one holder, and a holder that lost it writes nothing. A host that cannot beat stops its
connections itself (another host is about to take them). SIGTERM drains: the host says so,
hands its connections over and releases every lease before it exits.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.module_loading import import_string

from crm import coordination
from crm.vocabulary import label_for

from . import fleet
from .connections import ConnectionLease, LeaseLost, answer, backoff_delay, commands_key

logger = logging.getLogger(__name__)

WAKE = {"op": "_wake"}
BATCH = 200  # connections per batched Redis script, query or UPDATE
BATCHES_AT_ONCE = 4  # of one kind of work, side by side on the database threads

# Renew many leases at once (coordination's take_lease, for each KEYS[i] and token ARGV[i+1]).
_RENEW_MANY = """
local ttl = ARGV[1]
local kept = {}
for i, name in ipairs(KEYS) do
  local token = ARGV[i + 1]
  local current = redis.call('GET', name)
  if current == token then
    redis.call('PEXPIRE', name, ttl)
    kept[i] = 1
  elseif not current then
    redis.call('SET', name, token, 'PX', ttl)
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
"""


class Hosted:
    """One connection on a host: `run` drives it (connect, back off, connect again) until it
    is stopped, gives up or loses its lease. Subclasses say how to connect once."""

    kind = ""
    model = None
    key_field = "pk"
    max_attempts: int | None = None

    def __init__(self, host: "ConnectionHost", key: int):
        self.host, self.key = host, key
        self.queue: asyncio.Queue = asyncio.Queue()
        self.stop_reason: str | None = None
        self.lease: ConnectionLease | None = None
        self.connected = False
        self.prepared = False
        self.attempts = 0

    # -- the host's side

    def acquire(self) -> ConnectionLease | None:
        return ConnectionLease.acquire(
            self.kind, self.model, self.key_field, self.key, host=self.host.id
        )

    @classmethod
    def ensure_rows(cls, keys: list) -> None:
        """The state rows a batch of leases is written to exist (a database thread)."""

    @classmethod
    def prepare_many(cls, conns: "list[Hosted]") -> None:
        """`prepare` for a batch (one query where a kind can); one that fails is left for its
        own `prepare` to fail on, alone."""
        for conn in conns:
            try:
                conn.prepare()
                conn.prepared = True
            except Exception:  # noqa: S112 (retried alone, where its error is logged)
                continue

    def prepare(self) -> None:
        """Load what the connection needs (a database thread)."""

    def alive(self) -> bool:
        return False

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        self.queue.put_nowait(None)

    def deliver(self, command: dict) -> None:
        self.queue.put_nowait(command)

    # -- the loop

    async def run(self) -> str:
        attempts = self.attempts
        try:
            while not self.stop_reason:
                error = await self.connect_once(attempts)
                if self.stop_reason:
                    break
                if self.connected:
                    attempts, self.connected = 0, False
                if self.take_restart():
                    attempts = 0
                    continue
                attempts += 1
                if self.max_attempts and attempts >= self.max_attempts:
                    await self.host.db(self.on_give_up, error, attempts)
                    self.stop_reason = self.stop_reason or "failed"
                    break
                delay = backoff_delay(attempts)
                await self.host.db(self.on_retry, error, attempts, delay)
                await self.pause(delay)
        except LeaseLost as exc:
            self.stop_reason = "lease_lost"
            logger.warning("%s=%s lease lost (%s); stopped writing", self.kind, self.key, exc)
        return self.stop_reason or "stopped"

    async def pause(self, seconds: float) -> None:
        """Back off; commands are answered meanwhile, a stop or a restart ends it."""
        deadline = time.monotonic() + seconds
        while not self.stop_reason and not self.take_restart(peek=True):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                command = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                return
            if command is not None and command is not WAKE:
                await self.serve(command)

    async def connect_once(self, attempts: int) -> str:
        raise NotImplementedError

    async def serve(self, command: dict) -> None:
        """Answer one command from another process."""

    def take_restart(self, peek: bool = False) -> bool:
        return False

    def on_retry(self, error: str, attempts: int, delay: float) -> None:
        pass

    def on_give_up(self, error: str, attempts: int) -> None:
        pass


# ---------------------------------------------------------------- Telegram


def _telegram_class():
    from .models import TelegramAccount
    from .telegram.listener import KIND, TelegramListener

    class HostedTelegram(Hosted, TelegramListener):
        kind = KIND
        model = TelegramAccount
        client = None  # until a connection starts

        def prepare(self) -> None:
            self._prepare_with(TelegramAccount.objects.get(pk=self.key))

        def _prepare_with(self, account) -> None:
            self.account_id = self.key
            self.account = account
            self.attempts = self.account.reconnect_attempts
            self.client = None
            self.catching_up, self.caught_up = False, 0
            self.prepared = True

        @classmethod
        def prepare_many(cls, conns) -> None:
            rows = TelegramAccount.objects.in_bulk([conn.key for conn in conns])
            for conn in conns:
                if conn.key in rows:
                    conn._prepare_with(rows[conn.key])

        async def _on_connected(self) -> None:
            """Connected: written with the others connecting in the same moment (one fenced
            UPDATE), as write_connected would; LeaseLost when our epoch is not the row's."""
            self.connected = True
            await self.host.connecting(self)
            logger.info("telegram: account=%s connected", self.account_id)

        @property
        def max_attempts(self) -> int:
            return settings.CONNECTION_MAX_RECONNECT_ATTEMPTS

        async def _db(self, function, *args, **kwargs):
            return await self.host.db(function, *args, **kwargs)

        on_retry = TelegramListener.on_retry
        on_give_up = TelegramListener.on_give_up

        def alive(self) -> bool:
            client = self.client
            return self.connected and client is not None and client.is_connected()

        async def connect_once(self, attempts: int) -> str:
            logger.info("telegram: account=%s connecting", self.key)
            self.connected = False
            return await self._connect_and_listen()

        async def _watch(self) -> None:
            """Wait for commands, a stop, or the connection's end (Telethon's
            `disconnected` future wakes us; a client without one is looked at every 5 s)."""
            disconnected = getattr(self.client, "disconnected", None)
            if isinstance(disconnected, asyncio.Future):
                disconnected.add_done_callback(lambda _f: self.queue.put_nowait(WAKE))
            while self.client.is_connected() and not self.stop_reason:
                try:
                    command = await asyncio.wait_for(self.queue.get(), 15)
                except TimeoutError:
                    continue
                if command is None or command is WAKE:
                    continue
                await self._serve(command)

        async def serve(self, command: dict) -> None:
            if command.get("op") in ("send", "react", "download"):
                await self._db(
                    answer, command["reply"], {"error": "The Telegram account is not connected."}
                )
            elif command.get("op") == "stop":
                self.stop_reason = "stopped"

    return HostedTelegram


# ---------------------------------------------------------------- WhatsApp (QR-linked)


def _whatsapp_class():
    from .models import WhatsAppNumber, WhatsAppSession
    from .whatsapp import metrics as wa_metrics
    from .whatsapp.lease import KIND
    from .whatsapp.sessions import SessionRunner, Status

    class HostedWhatsApp(Hosted, SessionRunner):
        kind = KIND
        model = WhatsAppSession
        key_field = "number_id"
        adapter = None  # until a connection starts

        def acquire(self):
            WhatsAppSession.objects.get_or_create(number_id=self.key)
            return super().acquire()

        @classmethod
        def ensure_rows(cls, keys: list) -> None:
            WhatsAppSession.objects.bulk_create(
                [WhatsAppSession(number_id=key) for key in keys], ignore_conflicts=True
            )

        def prepare(self) -> None:
            self.number = WhatsAppNumber.objects.get(pk=self.key)
            self.attempts = WhatsAppSession.objects.get(number_id=self.key).reconnect_attempts
            self.adapter = None
            self.restart_requested = False
            self.callback_error = ""
            self.qr_count = 0
            self.redis = coordination.redis_client()
            self._home = None

        @property
        def max_attempts(self) -> int:
            return settings.CONNECTION_MAX_RECONNECT_ATTEMPTS

        def _closes_connection(self) -> bool:
            return not self.host.is_db_thread()

        def _guarded(self, callback, *args, fatal: bool = True) -> None:
            """neonize calls back on its own threads (one per session): the work runs on the
            host's few database threads, so 200 sessions never hold 200 PostgreSQL
            connections; the calling thread waits for it, as neonize expects."""
            if self.host.is_db_thread():
                return SessionRunner._guarded(self, callback, *args, fatal=fatal)
            return self.host.db_pool.submit(
                SessionRunner._guarded, self, callback, *args, fatal=fatal
            ).result()

        def alive(self) -> bool:
            return self.adapter is not None and self._alive()

        def stop(self, reason: str) -> None:
            super().stop(reason)
            if self.adapter is not None:
                self.adapter.stop()

        def take_restart(self, peek: bool = False) -> bool:
            if peek:
                return self.restart_requested
            return SessionRunner.take_restart(self)

        def on_retry(self, error, attempts, delay):
            SessionRunner.on_retry(self, error, attempts, delay)

        def on_give_up(self, error, attempts):
            SessionRunner.on_give_up(self, error, attempts)

        async def serve(self, command: dict) -> None:
            await self.host.db(self._handle, command)

        async def connect_once(self, attempts: int) -> str:
            status = Status.STARTING if attempts == 0 else Status.RECONNECTING
            await self.host.db(self._write, status=status, holder=self.lease.token)
            logger.info("whatsapp: number=%s connecting (attempt %s)", self.key, attempts)
            factory = import_string(settings.WHATSAPP_WEB_ADAPTER)
            try:
                self.adapter = await self.host.db(factory, self.key, self.number.web_jid, self)
            except Exception as exc:
                logger.exception("whatsapp: number=%s adapter could not start", self.key)
                wa_metrics.record_error(str(exc), self.number.company_id)
                return f"The WhatsApp client could not start: {exc}"
            outcome: dict = {}
            adapter = self.adapter

            def connect():
                try:
                    adapter.connect()
                except Exception as exc:  # the adapter's own failure, reported below
                    outcome["error"] = str(exc) or exc.__class__.__name__
                finally:
                    connection.close()

            loop = asyncio.get_running_loop()
            done = loop.run_in_executor(self.host.blocking, connect)
            done.add_done_callback(lambda _f: self.queue.put_nowait(WAKE))
            while not done.done():
                command = await self.queue.get()
                if command is not None and command is not WAKE:
                    await self.serve(command)
                if self.stop_reason or self.restart_requested or self.callback_error:
                    adapter.stop()
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), 15)
            return self._outcome(outcome)

    return HostedWhatsApp


# ---------------------------------------------------------------- IMAP IDLE


def _email_class():
    from .email.imap import IDLE_KIND, _idle_once, error_words, idle_failed
    from .models import EmailAccount

    class HostedIdle(Hosted):
        """IDLE on one mailbox: IMAPClient blocks, so it waits on a bounded pool thread;
        polling stays the fallback (no attempt limit)."""

        kind = IDLE_KIND
        model = EmailAccount

        def alive(self) -> bool:
            return self.connected and not self.stop_reason

        async def connect_once(self, attempts: int) -> str:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.host.blocking, self._once)

        def _once(self) -> str:
            try:
                outcome = _idle_once(self.key, self.lease, lambda: bool(self.stop_reason), self)
            except LeaseLost:
                raise
            except Exception as exc:
                self.connected = False
                return error_words(exc, EmailAccount.objects.get(pk=self.key))
            finally:
                connection.close()
            self.stop_reason = self.stop_reason or outcome
            return ""

        def on_retry(self, error: str, attempts: int, delay: float) -> None:
            idle_failed(self.lease, error, attempts, delay)

    return HostedIdle


RUNNERS = {
    "whatsapp:session": _whatsapp_class,
    "telegram:account": _telegram_class,
    "email:idle": _email_class,
}


# ---------------------------------------------------------------- the host


class ConnectionHost:
    def __init__(self, capacity: int | None = None):
        self.id = f"{fleet.HOST_PREFIX}{socket.gethostname()}:{os.getpid()}"
        self.capacity = capacity if capacity is not None else settings.CONNECTION_HOST_CAPACITY
        self.held: dict[str, Hosted] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.not_before: dict[str, float] = {}  # entry -> when it may start again
        self.draining = False
        self.last_beat = 0.0
        self.db_pool = ThreadPoolExecutor(
            settings.CONNECTION_HOST_DB_THREADS, thread_name_prefix="host-db"
        )
        self.blocking = ThreadPoolExecutor(
            settings.CONNECTION_HOST_IDLE_THREADS, thread_name_prefix="host-conn"
        )
        # Assignments and lease renewals never queue behind connection work (hundreds of
        # connects at once would starve them past the lease's TTL): a thread of their own.
        self.beat_pool = ThreadPoolExecutor(1, thread_name_prefix="host-beat")
        self.classes = {kind: make() for kind, make in RUNNERS.items()}
        # What many connections starting in the same moment ask for is done in batches (a
        # host taking over hundreds does not take their leases, load their rows or write
        # "connected" one by one).
        self.acquire = Batcher(self, self._take_leases)
        self.connecting = Batcher(self, _write_connected)
        self.peers: set[str] = set()  # other hosts alive at the last heartbeat
        self._done = threading.Event()

    # -- helpers

    async def db(self, function, *args, **kwargs):
        """Run blocking work (ORM, Redis) on the host's database threads."""

        def call():
            close_old_connections()
            return function(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self.db_pool, call)

    @staticmethod
    def is_db_thread() -> bool:
        return threading.current_thread().name.startswith("host-db")

    def info(self) -> dict:
        return {
            "capacity": self.capacity,
            "load": len(self.held),
            "draining": self.draining,
            "pid": os.getpid(),
            "at": time.time(),
        }

    # -- main

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stopping.set)
        await self.db(self._advertise)
        threading.Thread(target=self._beat_forever, name="host-beat", daemon=True).start()
        logger.info("connection host %s up: capacity %s", self.id, self.capacity)
        doorbell = threading.Thread(target=self._doorbell, name="host-doorbell", daemon=True)
        doorbell.start()
        periodic = [
            self.loop.create_task(self._every(1.0, self.beat)),
            self.loop.create_task(
                self._every(settings.CONNECTION_LEASE_SECONDS / 3, self.renew_leases)
            ),
            self.loop.create_task(
                self._every(settings.CONNECTION_HEARTBEAT_SECONDS, self.row_heartbeats)
            ),
            self.loop.create_task(self._every(5.0, self.check_wanted)),
            self.loop.create_task(self._every(10.0, self.sweep_commands)),
        ]
        await self.stopping.wait()
        await self.drain()
        for task in periodic:
            task.cancel()
        self._done.set()
        self.db_pool.shutdown(wait=False, cancel_futures=True)
        self.blocking.shutdown(wait=False, cancel_futures=True)
        logger.info("connection host %s stopped", self.id)

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                logger.exception("connection host: %s failed", job.__name__)

    async def drain(self) -> None:
        """SIGTERM: say we drain, hand the connections over, release every lease, leave."""
        self.draining = True
        logger.info("connection host %s draining %s connection(s)", self.id, len(self.held))
        with contextlib.suppress(Exception):
            await self.db(self._advertise)
            await self.db(fleet.supervise)  # the others get our connections now
        for conn in list(self.held.values()):
            conn.stop("shutdown")
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=30)
        self._done.set()  # the heartbeat thread stops before the key goes
        with contextlib.suppress(Exception):
            client = coordination.redis_client()
            client.delete(fleet.host_key(self.id))

    # -- heartbeat and assignments

    def _advertise(self) -> None:
        """The heartbeat: this host, its capacity and load, alive for CONNECTION_HOST_TTL."""
        pipe = coordination.redis_client().pipeline(transaction=False)
        ttl_ms = int(settings.CONNECTION_HOST_TTL * 1000)
        pipe.set(fleet.host_key(self.id), json.dumps(self.info()), px=ttl_ms)
        pipe.sadd(coordination.key(fleet.HOSTS), self.id)
        pipe.execute()
        self.last_beat = time.monotonic()

    def _beat_forever(self) -> None:
        """A thread of its own, so a busy event loop (hundreds of connects at once) never
        lets the heartbeat lapse while the process lives."""
        while not self._done.wait(settings.CONNECTION_HOST_TTL / 5):
            try:
                self._advertise()
                if settings.CONNECTION_HOST_WATCH_PEERS:
                    self._watch_peers()
            except redis.RedisError:
                logger.warning("connection host %s: heartbeat not written", self.id)

    def _watch_peers(self) -> None:
        """Hosts watch each other's heartbeats: when one seen alive is gone (killed, frozen,
        drained), the supervisor runs now rather than at its next period, so its connections
        move within the heartbeat's TTL. (A host that joins gets its share at the next
        period: rebalancing is not urgent.) On a thread of its own: our heartbeat never
        waits for it."""
        alive = set(fleet.live_hosts()) - {self.id}
        vanished, self.peers = self.peers - alive, alive
        if vanished and not self.draining:
            logger.warning("connection host %s: %s gone; supervising now", self.id, vanished)
            threading.Thread(target=self._supervise_now, name="host-supervise", daemon=True).start()

    @staticmethod
    def _supervise_now() -> None:
        try:
            fleet.supervise()
        except Exception:
            logger.exception("connection host: supervising after a host died failed")
        finally:
            connection.close()

    def _assigned(self) -> set[str]:
        members = coordination.redis_client().smembers(fleet.assigned_key(self.id))
        return {member.decode() for member in members}

    async def beat(self) -> None:
        """What the supervisor assigned to us, held; unless our heartbeat lapsed (Redis
        unreachable): then other hosts may be taking our connections, so we let go of all."""
        if time.monotonic() - self.last_beat > settings.CONNECTION_HOST_TTL:
            self._fence("heartbeat lapsed")
            return
        try:
            assigned = await asyncio.get_running_loop().run_in_executor(
                self.beat_pool, self._assigned
            )
        except redis.RedisError:
            return
        self.reconcile(assigned)

    def _fence(self, why: str) -> None:
        if self.held:
            logger.error("connection host %s: %s; stopping every connection", self.id, why)
        for conn in list(self.held.values()):
            conn.stop("fenced")

    def reconcile(self, assigned: set[str]) -> None:
        now = time.monotonic()
        for entry in list(self.held):
            if entry not in assigned:
                self.held[entry].stop("unassigned")
        if self.draining:
            return
        for entry in sorted(assigned):
            if entry in self.tasks or self.not_before.get(entry, 0) > now:
                continue
            if len(self.held) >= self.capacity:
                break
            self.start(entry)

    def start(self, entry: str) -> None:
        kind, key = fleet.split(entry)
        cls = self.classes.get(kind)
        if cls is None:
            return
        conn = cls(self, key)
        self.held[entry] = conn
        self.tasks[entry] = self.loop.create_task(self._hold(entry, conn))

    async def _hold(self, entry: str, conn: Hosted) -> None:
        reason = "error"
        try:
            lease = await self.acquire(conn)
            if lease is None:
                reason = "held"
                logger.info("%s=%s is held by another holder; retrying", conn.kind, conn.key)
            else:
                conn.lease = lease
                try:
                    if not conn.prepared:
                        await self.db(conn.prepare)
                    reason = await conn.run()
                finally:
                    with contextlib.suppress(Exception):
                        await self.db(lease.release)
        except Exception:
            logger.exception("%s=%s failed on the host", conn.kind, conn.key)
        finally:
            self.held.pop(entry, None)
            self.tasks.pop(entry, None)
            delay = {"held": 1.0, "lease_lost": 2.0, "fenced": 2.0, "unassigned": 0.0}.get(
                reason, settings.CONNECTION_SUPERVISOR_SECONDS
            )
            self.not_before[entry] = time.monotonic() + delay
            logger.info("%s=%s ended on host (%s)", conn.kind, conn.key, reason)

    def _take_leases(self, conns: list[Hosted]) -> dict[int, object]:
        """The fenced leases of a batch (ConnectionLease.acquire_many, per kind), and the rows
        of those taken loaded (prepare_many). id(conn) -> lease or None."""
        from .connections import ConnectionLease

        by_kind: dict[type, list[Hosted]] = {}
        for conn in conns:
            by_kind.setdefault(type(conn), []).append(conn)
        leases: dict[int, object] = {}
        for cls, group in by_kind.items():
            keys = [conn.key for conn in group]
            cls.ensure_rows(keys)
            taken = ConnectionLease.acquire_many(
                cls.kind, cls.model, cls.key_field, keys, host=self.id
            )
            for conn in group:
                leases[id(conn)] = conn.lease = taken.get(conn.key)
            with contextlib.suppress(Exception):  # each is then prepared alone
                cls.prepare_many([conn for conn in group if conn.lease is not None])
        return leases

    # -- what each connection used to do alone

    async def renew_leases(self) -> None:
        held = [conn for conn in self.held.values() if conn.lease is not None]
        if not held:
            return

        def renew() -> list[bool]:
            # One script call per 500 leases: one round trip and one reply (a pipeline's
            # reply per lease would wait for the GIL behind busy threads each time).
            client = coordination.redis_client()
            ttl_ms = max(int(settings.CONNECTION_LEASE_SECONDS * 1000), 1)
            kept: list[bool] = []
            for start in range(0, len(held), 500):
                chunk = held[start : start + 500]
                kept += [
                    bool(result)
                    for result in client.eval(
                        _RENEW_MANY,
                        len(chunk),
                        *[coordination.key(conn.lease.name) for conn in chunk],
                        ttl_ms,
                        *[conn.lease.token for conn in chunk],
                    )
                ]
            return kept

        started = time.monotonic()
        kept_all = await asyncio.get_running_loop().run_in_executor(self.beat_pool, renew)
        logger.info(
            "connection host: %s lease(s) renewed in %.2fs", len(held), time.monotonic() - started
        )
        for conn, kept in zip(held, kept_all, strict=True):
            if not kept:
                logger.warning("%s=%s lease lost; stopping", conn.kind, conn.key)
                conn.stop("lease_lost")

    async def row_heartbeats(self) -> None:
        by_kind: dict[type, list[Hosted]] = {}
        for conn in self.held.values():
            if not any(f.name == "last_heartbeat_at" for f in conn.model._meta.fields):
                continue  # IMAP IDLE: its liveness is the lease and the host's heartbeat
            if conn.lease is not None and conn.alive():
                by_kind.setdefault(type(conn), []).append(conn)
        for cls, conns in by_kind.items():
            await self.db(_write_heartbeats, cls.model, cls.key_field, conns)

    async def check_wanted(self) -> None:
        kinds = {conn.kind for conn in self.held.values()}
        for kind in kinds:
            wanted = {key for key, _company in await self.db(fleet.KINDS[kind].wanted)}
            for conn in [c for c in self.held.values() if c.kind == kind]:
                if conn.key not in wanted:
                    conn.stop("stopped")

    async def sweep_commands(self) -> None:
        """Commands whose doorbell was lost (the holder changed meanwhile): picked up here."""
        held = list(self.held.values())
        if not held:
            return

        def pop_all():
            pipe = coordination.redis_client().pipeline(transaction=False)
            for conn in held:
                pipe.lpop(commands_key(conn.kind, conn.key))
            return pipe.execute()

        for conn, raw in zip(held, await self.db(pop_all), strict=True):
            if raw:
                conn.deliver(json.loads(raw))

    def _doorbell(self) -> None:
        """One blocking pop on this host's doorbell: commands for any of its connections."""
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10)
        name = fleet.doorbell_key(self.id)
        while not self._done.is_set():
            try:
                item = client.blpop([name], timeout=2)
                if not item:
                    continue
                ring = json.loads(item[1])
                if ring.get("op") == "command":
                    kind, key = fleet.split(ring["item"])
                    raw = client.lpop(commands_key(kind, key))
                    if raw:
                        self.loop.call_soon_threadsafe(self._deliver, ring["item"], json.loads(raw))
                elif ring.get("op") in ("assigned", "start"):
                    if ring.get("item"):
                        self.not_before.pop(ring["item"], None)
                    asyncio.run_coroutine_threadsafe(self.beat(), self.loop)
            except redis.RedisError:
                time.sleep(1)
            except Exception:
                logger.exception("connection host: doorbell failed")
                time.sleep(1)

    def _deliver(self, entry: str, command: dict) -> None:
        conn = self.held.get(entry)
        if conn is not None:
            conn.deliver(command)
        else:  # not ours (any more): back in its list for whoever holds it next
            kind, key = fleet.split(entry)
            name, raw = commands_key(kind, key), json.dumps(command)
            self.db_pool.submit(lambda: coordination.redis_client().lpush(name, raw))


class Batcher:
    """`await batcher(conn)`: calls from many connections in the same moment (a host taking
    over hundreds) handled by `handle(conns) -> {id(conn): result or exception}` in one
    database call per BATCH of them, BATCHES_AT_ONCE at a time."""

    def __init__(self, host: "ConnectionHost", handle):
        self.host, self.handle = host, handle
        self.waiting: list[tuple[Hosted, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def __call__(self, conn: Hosted):
        future = self.host.loop.create_future()
        self.waiting.append((conn, future))
        if self.task is None or self.task.done():
            self.task = self.host.loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(0)  # the connections started in the same turn join this batch
        running: set[asyncio.Task] = set()
        while self.waiting or running:
            while self.waiting and len(running) < BATCHES_AT_ONCE:
                batch, self.waiting = self.waiting[:BATCH], self.waiting[BATCH:]
                running.add(self.host.loop.create_task(self._one(batch)))
            _done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

    async def _one(self, batch: list[tuple[Hosted, asyncio.Future]]) -> None:
        try:
            results = await self.host.db(self.handle, [conn for conn, _f in batch])
        except Exception as exc:
            results = {id(conn): exc for conn, _f in batch}
        for conn, future in batch:
            outcome = results.get(id(conn))
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _write_connected(conns: list[Hosted]) -> dict[int, object]:
    """ConnectionLease.write_connected for a batch of connections: each written only while it
    holds its Redis lease (one MGET) and its epoch is the row's (one UPDATE per kind); the
    others get LeaseLost. Then each tells its company's admins, as one by one would."""
    from .connections import LeaseLost, publish_to_admins_many

    outcomes: dict[int, object] = {}
    by_kind: dict[type, list[Hosted]] = {}
    for conn in conns:
        by_kind.setdefault(type(conn), []).append(conn)
    for cls, group in by_kind.items():
        tokens = coordination.redis_client().mget(
            [coordination.key(conn.lease.name) for conn in group]
        )
        holding = []
        for conn, token in zip(group, tokens, strict=True):
            if token is not None and token.decode() == conn.lease.token:
                holding.append(conn)
            else:
                outcomes[id(conn)] = LeaseLost(f"{conn.lease.name}: held by another worker")
        model = cls.model
        table = model._meta.db_table
        field = model._meta.pk if cls.key_field == "pk" else model._meta.get_field(cls.key_field)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET status = %s, last_connected_at = now(), "  # noqa: S608
                "last_heartbeat_at = now(), reconnect_attempts = 0, next_attempt_at = NULL, "
                "last_error = '' FROM unnest(%s::bigint[], %s::bigint[]) AS c(key, epoch) "
                f"WHERE {table}.{field.column} = c.key AND {table}.lease_epoch = c.epoch "
                f"RETURNING {table}.{field.column}",
                [
                    str(model.Status.CONNECTED),
                    [conn.key for conn in holding],
                    [conn.lease.epoch for conn in holding],
                ],
            )
            written = {row[0] for row in cursor.fetchall()}
        announced = []
        for conn in holding:
            if conn.key in written:
                outcomes[id(conn)] = None
                announced.append(conn)
            else:
                outcomes[id(conn)] = LeaseLost(f"{conn.lease.name}: a newer holder owns it")
        publish_to_admins_many(
            [
                (
                    conn.account.company_id,
                    "telegram.connected",
                    {
                        "account_id": conn.key,
                        "status": str(model.Status.CONNECTED),
                        "status_label": label_for(model, model.Status.CONNECTED),  # lazy
                    },
                )
                for conn in announced
            ]
        )
    return outcomes


def _write_heartbeats(model, key_field: str, conns: list[Hosted]) -> None:
    """last_heartbeat_at = now() for every live connection of one kind, each only while its
    row still carries our epoch (the same fencing as ConnectionLease.write)."""
    table = model._meta.db_table
    field = model._meta.pk if key_field == "pk" else model._meta.get_field(key_field)
    column = field.column
    keys = [conn.key for conn in conns]
    epochs = [conn.lease.epoch for conn in conns]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_heartbeat_at = now() "  # noqa: S608 (our own names)
            f"FROM unnest(%s::bigint[], %s::bigint[]) AS beat(key, epoch) "
            f"WHERE {table}.{column} = beat.key AND {table}.lease_epoch = beat.epoch",
            [keys, epochs],
        )


def run_host(capacity: int | None = None) -> None:
    asyncio.run(ConnectionHost(capacity).run())
