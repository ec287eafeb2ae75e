"""Long-lived connections (WhatsApp sessions, Telegram listeners): what every kind shares.

- Exactly one live connection per account across every worker: a Redis lease its holder
  renews (TTL CONNECTION_LEASE_SECONDS), fenced by an epoch that PostgreSQL checks on every
  write of connection state. Acquiring takes the lease (SET NX with a TTL), then a fresh epoch
  (INCR) that is written to the state row only if newer than the row's. Every later write
  names its epoch in the WHERE clause, so a holder that paused past its TTL (a GC pause, a
  frozen VM) and lost the lease to a newer holder writes nothing.
- Reconnects back off exponentially with jitter (backoff_delay).
- Other processes talk to the holder through a Redis list of commands (send_command).
- SHUTDOWN is set when the worker is asked to stop (SIGTERM): holders close and let go.
"""

import contextlib
import json
import logging
import os
import random
import shutil
import socket
import threading
import time
import uuid
from datetime import timedelta

import redis
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from accounts.models import Role, User
from crm import coordination
from messaging import events
from messaging.channels import DownloadError

logger = logging.getLogger(__name__)

SHUTDOWN = threading.Event()


class LeaseLost(Exception):
    """Another holder has the connection now: stop and write nothing more."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_name(kind: str, key) -> str:
    return f"{kind}:{key}"


def holder_of(kind: str, key) -> str | None:
    """The token of the lease's current holder, None when nobody holds it."""
    return coordination.lease_holder(lease_name(kind, key))


class ConnectionLease:
    """The lease of one connection; `model.objects.filter(**{key_field: key})` is its state row
    (which has `lease_epoch` and `holder`)."""

    def __init__(self, kind: str, model, key_field: str, key, token: str, epoch: int):
        self.kind, self.model, self.key_field, self.key = kind, model, key_field, key
        self.token = token
        self.epoch = epoch

    @property
    def name(self) -> str:
        return lease_name(self.kind, self.key)

    @classmethod
    def acquire(
        cls, kind: str, model, key_field: str, key, host: str | None = None
    ) -> "ConnectionLease | None":
        """Take the lease, or None when another holder has it. The state row must exist.
        `host`: a connection host (channels_integrations.fleet) acquiring; it may take over
        the lease of a holder whose host's heartbeat has expired (the epoch fences that one)."""
        token = f"{host or worker_name()}:{uuid.uuid4().hex[:8]}"
        name = lease_name(kind, key)
        if not coordination.take_lease(name, token, settings.CONNECTION_LEASE_SECONDS):
            if not (host and _take_over_from_dead_host(name, token)):
                return None
        epoch = coordination.redis_client().incr(coordination.key(f"{name}:epoch"))
        # One UPDATE (atomic on its own): the epoch is written only if newer than the row's.
        claimed = model.objects.filter(**{key_field: key, "lease_epoch__lt": epoch}).update(
            lease_epoch=epoch, holder=token
        )
        if not claimed:  # a newer epoch already wrote the row (our INCR raced a faster one)
            coordination.release_lease(name, token)
            return None
        logger.info("%s=%s lease taken epoch=%s", kind, key, epoch)
        return cls(kind, model, key_field, key, token, epoch)

    @classmethod
    def acquire_many(
        cls, kind: str, model, key_field: str, keys: list, host: str
    ) -> "dict[object, ConnectionLease]":
        """`acquire` for many connections of one kind at once (a host taking over a dead
        one's): the same steps with the same fencing, in one Redis script (take each lease,
        or take it over from a host without heartbeat, then INCR its epoch) and one UPDATE
        (each row's epoch written only if newer than the row's). Returns the leases taken."""
        if not keys:
            return {}
        tokens = [f"{host}:{uuid.uuid4().hex[:8]}" for _ in keys]
        names = [lease_name(kind, key) for key in keys]
        from . import fleet

        epochs = coordination.redis_client().eval(
            _ACQUIRE_MANY,
            2 * len(keys),
            *[coordination.key(name) for name in names],
            *[coordination.key(f"{name}:epoch") for name in names],
            max(int(settings.CONNECTION_LEASE_SECONDS * 1000), 1),
            fleet.host_key(""),
            *tokens,
        )
        taken = [
            (key, token, int(epoch))
            for key, token, epoch in zip(keys, tokens, epochs, strict=True)
            if int(epoch) > 0
        ]
        if not taken:
            return {}
        table = model._meta.db_table
        field = model._meta.pk if key_field == "pk" else model._meta.get_field(key_field)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET lease_epoch = c.epoch, holder = c.token "  # noqa: S608
                f"FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS c(key, epoch, token) "
                f"WHERE {table}.{field.column} = c.key AND {table}.lease_epoch < c.epoch "
                f"RETURNING {table}.{field.column}",
                [
                    [k for k, _t, _e in taken],
                    [e for _k, _t, e in taken],
                    [t for _k, t, _e in taken],
                ],
            )
            claimed = {row[0] for row in cursor.fetchall()}
        leases = {}
        for key, token, epoch in taken:
            if key in claimed:
                leases[key] = cls(kind, model, key_field, key, token, epoch)
            else:  # a newer epoch already wrote the row (our INCR raced a faster one)
                coordination.release_lease(lease_name(kind, key), token)
        logger.info("%s: %s of %s lease(s) taken in one batch", kind, len(leases), len(keys))
        return leases

    def renew(self) -> bool:
        """Extend the TTL; False when the lease was lost (expired and taken by another)."""
        return coordination.take_lease(self.name, self.token, settings.CONNECTION_LEASE_SECONDS)

    def release(self) -> None:
        coordination.release_lease(self.name, self.token)
        logger.info("%s=%s lease released", self.kind, self.key)

    def holds(self) -> bool:
        return coordination.lease_holder(self.name) == self.token

    def write(self, **fields) -> None:
        """Write connection state, only as the current holder (Redis token, then epoch)."""
        if not self.holds():
            raise LeaseLost(f"{self.name}: the lease is held by another worker")
        updated = self.model.objects.filter(
            **{self.key_field: self.key, "lease_epoch": self.epoch}
        ).update(**fields)
        if not updated:
            raise LeaseLost(f"{self.name}: a newer holder owns the connection")

    def write_connected(self, **fields) -> None:
        """The connection is up: connected now, the reconnect count and last error cleared."""
        now = timezone.now()
        self.write(
            status=self.model.Status.CONNECTED,
            last_connected_at=now,
            last_heartbeat_at=now,
            reconnect_attempts=0,
            next_attempt_at=None,
            last_error="",
            **fields,
        )
        connection_is_healthy(self)


_TAKE_OVER = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local host = string.match(current, '^(.*):[^:]*$')
if not host then return 0 end
if string.sub(host, 1, 5) ~= 'host@' then return 0 end
if redis.call('EXISTS', ARGV[3] .. host) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


# acquire_many: KEYS = n lease names then their n epoch keys; ARGV = ttl, host key prefix,
# then n tokens. For each: SET NX, else take over from a host without heartbeat (as
# _TAKE_OVER), then INCR the epoch. Returns the new epoch per lease, 0 where it was not taken.
_ACQUIRE_MANY = """
local n = #KEYS / 2
local ttl, prefix = ARGV[1], ARGV[2]
local epochs = {}
for i = 1, n do
  local name, token = KEYS[i], ARGV[i + 2]
  local taken = false
  local current = redis.call('GET', name)
  if not current then
    taken = true
  else
    local host = string.match(current, '^(.*):[^:]*$')
    if host and string.sub(host, 1, 5) == 'host@' and redis.call('EXISTS', prefix .. host) == 0 then
      taken = true
    end
  end
  if taken then
    redis.call('SET', name, token, 'PX', ttl)
    epochs[i] = redis.call('INCR', KEYS[n + i])
  else
    epochs[i] = 0
  end
end
return epochs
"""


def _take_over_from_dead_host(name: str, token: str) -> bool:
    """Take a lease whose holder is a connection host with no heartbeat (killed, frozen):
    without waiting for its TTL. That host also stops its own connections when it cannot beat
    (it fences itself), and its late writes fail on the epoch."""
    from . import fleet

    taken = coordination.redis_client().eval(
        _TAKE_OVER,
        1,
        coordination.key(name),
        token,
        max(int(settings.CONNECTION_LEASE_SECONDS * 1000), 1),
        fleet.host_key(""),
    )
    if taken:
        logger.warning("%s taken over from a host without heartbeat", name)
    return bool(taken)


def run_while_held(lease: ConnectionLease | None, kind: str, key, run) -> str:
    """`run(lease)` while holding `lease`, released afterwards whatever happens; "held" (and
    nothing run) when acquiring found another holder."""
    if lease is None:
        logger.info("%s=%s is held by another worker; not starting", kind, key)
        return "held"
    try:
        return run(lease)
    finally:
        lease.release()


class Supervised:
    """One long-lived connection as `reconnect_loop` drives it (WhatsApp sessions, Telegram
    listeners, IMAP IDLE): subclasses say how to connect once and when to stop, and record
    retries and giving up in their own rows."""

    stop_reason: str | None = None
    connected = False  # set when a connection came up: the next failure counts from 1 again
    max_attempts: int | None = None  # None: back off forever

    def stop_wanted(self) -> bool:
        raise NotImplementedError

    def connect_once(self, attempts: int) -> str:
        """One connection until it ends: why it failed ("" when it was asked to stop)."""
        raise NotImplementedError

    def take_restart(self) -> bool:
        """An admin asked for a fresh start (WhatsApp: a new QR): reconnect now, from 0."""
        return False

    def on_retry(self, error: str, attempts: int, delay: float) -> None:
        """Record and tell that connection `attempts` failed; the next comes in `delay` s."""

    def on_give_up(self, error: str, attempts: int) -> None:
        """Record and tell that the connection gave up after `attempts` (an admin restarts)."""

    def wait(self, lease: "ConnectionLease", seconds: float) -> bool:
        """Back off while holding the lease; False when asked to stop meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not lease.renew():
                raise LeaseLost("lease expired while backing off")
            if self.stop_wanted():
                return False
            if not self.idle(min(1.0, max(0.05, deadline - time.monotonic()))):
                return not self.stop_reason
        return True

    def idle(self, seconds: float) -> bool:
        """Spend a moment of the backoff (WhatsApp serves commands meanwhile); False ends the
        wait early (a restart, a stop)."""
        time.sleep(seconds)
        return True


def reconnect_loop(connection: Supervised, lease: "ConnectionLease", attempts: int = 0) -> str:
    """Connect, and when the connection ends, back off (BASE doubling to CAP, with jitter) and
    connect again, until asked to stop, the lease is lost or `max_attempts` failures in a row;
    returns why it ended."""
    try:
        while not connection.stop_wanted():
            error = connection.connect_once(attempts)
            if connection.stop_reason:
                break
            if connection.connected:
                attempts, connection.connected = 0, False
            if connection.take_restart():
                attempts = 0
                continue
            attempts += 1
            if connection.max_attempts and attempts >= connection.max_attempts:
                connection.on_give_up(error, attempts)
                connection.stop_reason = connection.stop_reason or "failed"
                break
            delay = backoff_delay(attempts)
            connection.on_retry(error, attempts, delay)
            if not connection.wait(lease, delay):
                break
    except LeaseLost:
        connection.stop_reason = "lease_lost"
        logger.warning("%s=%s lease lost; stopped writing", lease.kind, lease.key)
    return connection.stop_reason or "stopped"


def write_failure(
    lease: "ConnectionLease", error: str, attempts: int, status, retry_in=None, **fields
):
    """The state row after a failed connection: `status`, the attempt count, when the next
    comes (None: it gave up) and the error. The company's admins are told once per failure
    episode (the first failure; not each retry, until the connection is up again)."""
    now = timezone.now()
    lease.write(
        status=status,
        reconnect_attempts=attempts,
        next_attempt_at=None if retry_in is None else now + timedelta(seconds=retry_in),
        last_error=error,
        last_error_at=now,
        **fields,
    )
    notify_admins_of_failure(lease, error)


def notify_admins_of_failure(lease: "ConnectionLease", error: str) -> None:
    """Tell the company's admins that this connection failed (notifications app, once per
    episode); a failure here is logged, never raised into the supervisor."""
    try:
        _notify_admins(lease, error)
    except Exception:
        logger.exception("%s=%s could not notify the admins", lease.kind, lease.key)


def _notify_admins(lease: "ConnectionLease", error: str) -> None:
    from notifications import services as notifications

    row = lease.model.objects.filter(**{lease.key_field: lease.key}).first()
    if row is None:
        return
    company_id = getattr(row, "company_id", None)
    if company_id is None and getattr(row, "tenant_path", "").endswith("__company"):
        company_id = lease.model.objects.filter(pk=row.pk).values_list(
            f"{row.tenant_path}_id", flat=True
        )[0]
    if company_id is not None:
        notifications.notify_connection_failed(company_id, lease.name, str(row), error)


def connection_is_healthy(lease: "ConnectionLease") -> None:
    """The connection is up: its failure episode (if any) ends."""
    from notifications import services as notifications

    notifications.connection_healthy(lease.name)


def backoff_delay(attempt: int) -> float:
    """Seconds before reconnect `attempt` (1, 2, ...): BASE doubling to CAP, with jitter in
    [half, full] so connections that failed together do not retry together."""
    ceiling = min(
        settings.CONNECTION_BACKOFF_CAP, settings.CONNECTION_BACKOFF_BASE * 2 ** (attempt - 1)
    )
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not crypto)


# ---------------------------------------------------------------- commands to the holder


def commands_key(kind: str, key) -> str:
    return coordination.key(f"{kind}:{key}:commands")


def send_command(kind: str, key, command: dict) -> None:
    from . import fleet

    client = coordination.redis_client()
    name = commands_key(kind, key)
    client.rpush(name, json.dumps(command))
    client.expire(name, 300)
    fleet.ring(holder_of(kind, key), kind, key)  # a connection host reads its doorbell


def pop_command(kind: str, key) -> dict | None:
    """The next command for this holder, if one waits (a host rung by its doorbell)."""
    item = coordination.redis_client().lpop(commands_key(kind, key))
    return json.loads(item) if item else None


def stop_holder(kind: str, key) -> None:
    """Ask the holder, if any, to stop. Best effort: holders also watch their state row, so a
    command lost while Redis is down only delays the stop."""
    try:
        if holder_of(kind, key):
            send_command(kind, key, {"op": "stop"})
    except redis.RedisError:
        logger.warning("%s=%s stop command not sent (Redis unreachable)", kind, key)


def next_command(kind: str, key, timeout: float) -> dict | None:
    """The next command for this holder, waiting up to `timeout` seconds."""
    item = coordination.redis_client().blpop([commands_key(kind, key)], timeout=timeout)
    return json.loads(item[1]) if item else None


def answer(reply_key: str, reply: dict) -> None:
    client = coordination.redis_client()
    client.rpush(reply_key, json.dumps(reply))
    client.expire(reply_key, 60)


def ask_holder(kind: str, key, command: dict, timeout: float) -> dict | None:
    """Send a command that expects an answer; None when none came in time."""
    reply_key = coordination.key(f"{kind}:{key}:reply:{uuid.uuid4().hex}")
    send_command(kind, key, {**command, "reply": reply_key})
    item = coordination.redis_client().blpop([reply_key], timeout=timeout)
    return json.loads(item[1]) if item else None


def download_through_holder(
    kind: str,
    key,
    command: dict,
    *,
    timeout: float,
    max_bytes: int,
    destination,
    no_answer: str,
) -> None:
    """Ask the worker holding a connection to download a file (`command` plus the `path` of
    a spool file in our storage), then copy the spool file into `destination` in chunks,
    within `max_bytes`, and remove it. DownloadError with words an agent can act on."""
    path = default_storage.path(f"incoming/{kind}-{key}-{uuid.uuid4().hex}.part")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        reply = ask_holder(kind, key, {**command, "path": path}, timeout)
        if reply is None:
            raise DownloadError(no_answer)
        if "error" in reply:
            raise DownloadError(reply["error"])
        size = os.path.getsize(path)
        if size > max_bytes:
            raise DownloadError.too_large(size, max_bytes)
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, destination, 65536)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


# ---------------------------------------------------------------- supervisor helpers


def request_start(kind: str, key, task) -> bool:
    """Queue `task(key)` at most once per supervisor period (two supervisors may overlap; the
    lease turns away a duplicate anyway). True when queued. With connection hosts
    (settings.CONNECTION_HOSTS) the connection is assigned to a host instead."""
    from . import fleet

    if fleet.enabled():
        return fleet.assign_now(kind, key)
    starting = coordination.key(f"{kind}:{key}:starting")
    ttl_ms = int(settings.CONNECTION_SUPERVISOR_SECONDS * 900)
    if coordination.redis_client().set(starting, "1", nx=True, px=max(ttl_ms, 1)):
        task.delay(key)
        return True
    return False


def publish_to_admins_many(items: list[tuple[int, str, dict]]) -> None:
    """publish_to_admins for many (company id, event, data) at once: one query for the
    admins of every company named."""
    if not items:
        return
    admins: dict[int, list[int]] = {}
    for company_id, user_id in User.objects.filter(
        company_id__in={company_id for company_id, _e, _d in items},
        role=Role.ADMIN,
        is_active=True,
    ).values_list("company_id", "pk"):
        admins.setdefault(company_id, []).append(user_id)
    for company_id, event, data in items:
        if admins.get(company_id):
            events.publish(event, data, user_ids=admins[company_id])


def publish_to_admins(company_id: int, event: str, data: dict) -> None:
    """Connection events go to the company's admins (a QR links a device; errors are theirs)."""
    admin_ids = list(
        User.objects.filter(company_id=company_id, role=Role.ADMIN, is_active=True).values_list(
            "pk", flat=True
        )
    )
    if admin_ids:
        events.publish(event, data, user_ids=admin_ids)
