"""Connections as a fleet: connection hosts and the supervisor that assigns them work.

A connection host (`manage.py connection_host`, channels_integrations.hosting) holds hundreds
of long-lived connections (WhatsApp sessions, Telegram listeners, IMAP IDLE) on one event
loop. Each host advertises itself in Redis by a heartbeat (capacity, load, draining) under a
key that expires after CONNECTION_HOST_TTL: a host that stops beating (kill -9, a frozen
machine) is dead when its key is gone. What a host should hold is the Redis set of its
assignments, written only by the supervisor (beat) here:

- every wanted connection has one owner host (the OWNERS hash); it stays there while that host
  is alive, not draining and within its capacity (sticky);
- a connection without a live owner goes to the host with the most free room (balanced);
- when no host has room it is "waiting for capacity" (the WAITING set): its page, the API and
  /metrics say so, and the company's admins are told once;
- a dead host's connections are taken over at the next period: the new holder may take the
  lease of a holder whose host has no heartbeat (the PostgreSQL epoch still fences the old one).

Assignment is set membership, so a supervisor that runs twice starts nothing twice; the fenced
lease (channels_integrations.connections) still guarantees exactly one holder.
"""

import contextlib
import json
import logging
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from crm import coordination

logger = logging.getLogger(__name__)

HOSTS = "fleet:hosts"  # set: every host seen (dead ones are pruned by the supervisor)
OWNERS = "fleet:owners"  # hash: "kind|key" -> host id
SUPERVISING = "fleet:supervising"  # lock: one supervisor run at a time
WAITING = "fleet:waiting"  # set: "kind|key" of wanted connections no host has room for
# set: the waiting entries whose admins were told; an entry leaves it when it stops waiting,
# so each waiting episode is told once (whoever put it in WAITING: supervisor or assign_now).
TOLD = "fleet:waiting-told"
WAITING_LABEL = _("Waiting for capacity")
HOST_PREFIX = "host@"  # a connection host's id, and so the start of its lease tokens


def host_key(host: str) -> str:
    return coordination.key(f"fleet:host:{host}")


def assigned_key(host: str) -> str:
    return coordination.key(f"fleet:assigned:{host}")


def doorbell_key(host: str) -> str:
    return coordination.key(f"fleet:doorbell:{host}")


def item(kind: str, key) -> str:
    return f"{kind}|{key}"


def split(entry: str) -> tuple[str, int]:
    kind, _, key = entry.rpartition("|")
    return kind, int(key)


def host_of(token: str | None) -> str | None:
    """The host part of a lease token ("<hostname>:<pid>:<random>")."""
    if not token:
        return None
    return token.rsplit(":", 1)[0]


def enabled() -> bool:
    return bool(settings.CONNECTION_HOSTS)


# ---------------------------------------------------------------- what each kind wants


@dataclass(frozen=True)
class Kind:
    name: str  # the lease kind, e.g. "telegram:account"
    channel: str  # metric family prefix: whatsapp, telegram, email
    wanted: object  # () -> list of (key, company_id)
    names: object = None  # (keys) -> {key: what a person calls it}
    page: str = "settings"  # the URL name of the page that lists it


def _whatsapp_names(keys):
    from .models import WhatsAppNumber

    return {row.pk: str(row) for row in WhatsAppNumber.objects.filter(pk__in=keys)}


def _telegram_names(keys):
    from .models import TelegramAccount

    return {row.pk: str(row) for row in TelegramAccount.objects.filter(pk__in=keys)}


def _email_names(keys):
    from .models import EmailAccount

    return {row.pk: str(row) for row in EmailAccount.objects.filter(pk__in=keys)}


def _whatsapp_wanted():
    from .models import WhatsAppNumber, WhatsAppSession

    return list(
        WhatsAppSession.objects.filter(
            status__in=WhatsAppSession.WANTED,
            number__provider=WhatsAppNumber.Provider.WEB,
            number__is_active=True,
        )
        .exclude(number__status=WhatsAppNumber.Status.DELETING)
        .values_list("number_id", "number__company_id")
    )


def _telegram_wanted():
    from .models import TelegramAccount

    return list(
        TelegramAccount.objects.filter(
            is_active=True, status__in=TelegramAccount.WANTED, session_string__isnull=False
        ).values_list("pk", "company_id")
    )


def _email_wanted():
    from .models import EmailAccount

    return list(
        EmailAccount.objects.filter(is_active=True, use_idle=True).values_list("pk", "company_id")
    )


KINDS = {
    "whatsapp:session": Kind(
        "whatsapp:session", "whatsapp", _whatsapp_wanted, _whatsapp_names, "numbers"
    ),
    "telegram:account": Kind(
        "telegram:account", "telegram", _telegram_wanted, _telegram_names, "telegram_accounts"
    ),
    "email:idle": Kind("email:idle", "email", _email_wanted, _email_names, "email_accounts"),
}


# ---------------------------------------------------------------- hosts


def live_hosts(client=None) -> dict[str, dict]:
    """Every host whose heartbeat has not expired: id -> {capacity, load, draining, ...}."""
    client = client or coordination.redis_client()
    ids = sorted(member.decode() for member in client.smembers(coordination.key(HOSTS)))
    if not ids:
        return {}
    values = client.mget([host_key(host) for host in ids])
    return {host: json.loads(value) for host, value in zip(ids, values, strict=True) if value}


def host_alive(host: str | None) -> bool:
    if not host:
        return False
    try:
        return bool(coordination.redis_client().exists(host_key(host)))
    except redis.RedisError:
        return False


def is_host(host: str | None) -> bool:
    """A connection host's id ("host@<hostname>:<pid>"), not a Celery worker's name."""
    return bool(host) and host.startswith(HOST_PREFIX)


def holder_alive(token: str | None) -> bool:
    """A lease token's holder is alive: a host with a heartbeat, or (Celery-worker holders,
    which have no heartbeat key) simply the holder of a lease that has not lapsed."""
    host = host_of(token)
    if not host:
        return False
    if not is_host(host):
        return True
    try:
        return bool(coordination.redis_client().exists(host_key(host)))
    except redis.RedisError:
        return False


def is_waiting(kind: str, key) -> bool:
    try:
        return bool(
            coordination.redis_client().sismember(coordination.key(WAITING), item(kind, key))
        )
    except redis.RedisError:
        return False


def waiting_counts() -> dict[str, int]:
    counts = {name: 0 for name in KINDS}
    try:
        members = coordination.redis_client().smembers(coordination.key(WAITING))
    except redis.RedisError:
        return counts
    for member in members:
        kind, _key = split(member.decode())
        if kind in counts:
            counts[kind] += 1
    return counts


def shown_status(kind: str, key, status: str, holder: str, connected: str) -> str:
    """The status a person should see: "waiting" when no host has room for it, and never
    `connected` unless a live holder heartbeats (a row naming a dead host reconnects)."""
    if is_waiting(kind, key):
        return "waiting"
    if status == connected and not holder_alive(holder or None):
        return "reconnecting"
    return status


def row_state(row) -> tuple[str, Promise]:
    """(status, lazy label) a person should see for a WhatsApp session, Telegram account or
    mailbox (IMAP IDLE) row (channels_integrations.status builds the one vocabulary on it)."""
    from .models import EmailAccount, TelegramAccount, WhatsAppSession

    if isinstance(row, WhatsAppSession):
        kind, key = "whatsapp:session", row.number_id
    elif isinstance(row, TelegramAccount):
        kind, key = "telegram:account", row.pk
    elif isinstance(row, EmailAccount):
        # A mailbox's status is its polling's; only IDLE waits for a host's room.
        if row.is_active and row.use_idle and is_waiting("email:idle", row.pk):
            return "waiting", WAITING_LABEL
        return row.status, row.Status(row.status).label
    else:
        return row.status, row.Status(row.status).label
    shown = shown_status(kind, key, row.status, row.holder, row.Status.CONNECTED)
    if shown == "waiting":
        return shown, WAITING_LABEL
    if shown != row.status:
        return shown, row.Status(shown).label
    return shown, row.Status(row.status).label


# ---------------------------------------------------------------- the supervisor


def supervise() -> dict:
    """Assign every wanted connection to a live host with room (sticky, balanced); report
    the rest as waiting for capacity. Returns what it did. One at a time across the
    installation (beat's period, and a host that saw another die, may run it together)."""
    client = coordination.redis_client()
    lock = client.lock(coordination.key(SUPERVISING), timeout=120, blocking_timeout=60)
    if not lock.acquire():
        logger.warning("fleet supervisor: another run held the lock for 60 s; skipped")
        return {"skipped": True}
    try:
        return _supervise(client)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def _supervise(client) -> dict:
    hosts = live_hosts(client)
    known = {member.decode() for member in client.smembers(coordination.key(HOSTS))}
    dead = known - set(hosts)
    room = {
        host: int(info.get("capacity", 0))
        for host, info in hosts.items()
        if not info.get("draining")
    }
    load = dict.fromkeys(room, 0)
    wanted: dict[str, int] = {}  # item -> company id
    for kind in KINDS.values():
        for key, company_id in kind.wanted():
            wanted[item(kind.name, key)] = company_id
    owners = {k.decode(): v.decode() for k, v in client.hgetall(coordination.key(OWNERS)).items()}

    pipe = client.pipeline(transaction=False)
    done = {"kept": 0, "assigned": [], "unassigned": [], "waiting": [], "dead_hosts": sorted(dead)}
    for entry, owner in owners.items():
        if entry not in wanted:
            pipe.srem(assigned_key(owner), entry)
            pipe.hdel(coordination.key(OWNERS), entry)
            done["unassigned"].append(entry)
    unplaced = []
    kept: dict[str, list[str]] = {host: [] for host in room}
    for entry in sorted(wanted, key=_order):
        owner = owners.get(entry)
        if owner in load and load[owner] < room[owner]:
            load[owner] += 1
            kept[owner].append(entry)
            done["kept"] += 1
        else:
            unplaced.append(entry)
    waiting = []
    for entry in unplaced:
        free = {host: room[host] - load[host] for host in room if load[host] < room[host]}
        owner = owners.get(entry)
        if owner:
            pipe.srem(assigned_key(owner), entry)
        if not free:
            waiting.append(entry)
            if owner:
                pipe.hdel(coordination.key(OWNERS), entry)
            continue
        target = max(free, key=lambda host: (free[host], host))
        load[target] += 1
        pipe.sadd(assigned_key(target), entry)
        pipe.hset(coordination.key(OWNERS), entry, target)
        pipe.lpush(doorbell_key(target), json.dumps({"op": "assigned"}))
        pipe.expire(doorbell_key(target), 300)
        done["assigned"].append(entry)
    done["moved"] = _rebalance(pipe, room, load, kept)
    for host in dead:
        pipe.delete(assigned_key(host))
        pipe.srem(coordination.key(HOSTS), host)
    pipe.delete(coordination.key(WAITING))
    if waiting:
        pipe.sadd(coordination.key(WAITING), *waiting)
    pipe.execute()
    done["waiting"] = waiting
    _tell_admins_about_waiting(client, waiting, wanted)
    if done["assigned"] or done["unassigned"] or done["moved"] or waiting or dead:
        logger.info(
            "fleet supervisor: hosts=%s kept=%s assigned=%s unassigned=%s moved=%s waiting=%s "
            "dead=%s",
            len(hosts),
            done["kept"],
            len(done["assigned"]),
            len(done["unassigned"]),
            len(done["moved"]),
            len(waiting),
            len(dead),
        )
    return done


def _rebalance(pipe, room: dict[str, int], load: dict[str, int], kept: dict[str, list[str]]):
    """Sticky unless the fleet is lopsided: while the fullest host's share of its capacity
    exceeds the emptiest's by more than CONNECTION_REBALANCE_THRESHOLD, move one of its
    connections there, at most CONNECTION_REBALANCE_MAX per run. A move is an assignment like
    any other: the old host stops the connection and releases its lease, the new one takes
    the fenced lease after that (until then it finds it held and retries), so it is never
    held twice. Returns [(entry, from, to)]."""
    moved = []
    hosts = [host for host in room if room[host] > 0]
    limit = settings.CONNECTION_REBALANCE_MAX
    while len(hosts) > 1 and len(moved) < limit:
        share = {host: load[host] / room[host] for host in hosts}
        full = max(hosts, key=lambda host: (share[host], host))
        empty = min(hosts, key=lambda host: (share[host], host))
        if share[full] - share[empty] <= settings.CONNECTION_REBALANCE_THRESHOLD:
            break
        if not kept[full] or load[empty] >= room[empty]:
            break
        entry = kept[full].pop()
        load[full] -= 1
        load[empty] += 1
        pipe.srem(assigned_key(full), entry)
        pipe.sadd(assigned_key(empty), entry)
        pipe.hset(coordination.key(OWNERS), entry, empty)
        moved.append((entry, full, empty))
    for target in {to for _entry, _from, to in moved}:
        pipe.lpush(doorbell_key(target), json.dumps({"op": "assigned"}))
        pipe.expire(doorbell_key(target), 300)
    return moved


def _order(entry: str):
    kind, key = split(entry)
    return (kind, key)


def _tell_admins_about_waiting(client, waiting: list[str], wanted: dict[str, int]) -> None:
    """Once per waiting episode: a `connection.waiting` event and a stored notification
    (notifications app: the bell) to the company's admins; an entry that stopped waiting
    is forgotten, so waiting again is told again."""
    told_key = coordination.key(TOLD)
    told = {member.decode() for member in client.smembers(told_key)}
    if gone := told - set(waiting):
        client.srem(told_key, *gone)
    # SADD answers 1 only to the first adder: two supervisors never both tell.
    newly = [entry for entry in waiting if entry not in told and client.sadd(told_key, entry)]
    by_company: dict[int, list[str]] = {}
    for entry in newly:
        by_company.setdefault(wanted[entry], []).append(entry)
    for company_id, items in by_company.items():
        logger.warning(
            "fleet: company=%s has %s connection(s) waiting for capacity", company_id, len(items)
        )
        try:
            notify_waiting(company_id, items)
        except Exception:  # telling must never stop the supervisor
            logger.exception("fleet: could not tell company=%s about waiting", company_id)


def notify_waiting(company_id: int, entries: list[str]) -> None:
    """The one place admins hear that connections of any kind wait for capacity: the
    `connection.waiting` event (live pages) and one stored notification per connection."""
    from django.urls import reverse

    from notifications import services as notifications

    from .connections import publish_to_admins

    publish_to_admins(
        company_id,
        "connection.waiting",
        {
            "connections": [{"kind": split(entry)[0], "id": split(entry)[1]} for entry in entries],
            "detail": str(WAITING_LABEL),
        },
    )
    by_kind: dict[str, list[int]] = {}
    for entry in entries:
        kind, key = split(entry)
        by_kind.setdefault(kind, []).append(key)
    for kind_name, keys in by_kind.items():
        kind = KINDS.get(kind_name)
        names = kind.names(keys) if kind and kind.names else {}
        url = reverse(kind.page if kind else "settings")
        for key in keys:
            if key in names:  # deleted meanwhile: nothing to tell
                notifications.connection_waiting(company_id, names[key], url)


def assign_now(kind: str, key) -> bool:
    """A connection wanted right now (a fresh log-in, a new QR): place it without waiting
    for the supervisor's period. False when no host has room (it waits)."""
    try:
        client = coordination.redis_client()
        entry = item(kind, key)
        owner = client.hget(coordination.key(OWNERS), entry)
        owner = owner.decode() if owner else None
        hosts = live_hosts(client)
        if owner and owner in hosts and not hosts[owner].get("draining"):
            target = owner
        else:
            free = {
                host: int(info.get("capacity", 0)) - client.scard(assigned_key(host))
                for host, info in hosts.items()
                if not info.get("draining")
            }
            free = {host: room for host, room in free.items() if room > 0}
            if not free:
                client.sadd(coordination.key(WAITING), entry)
                return False
            target = max(free, key=lambda host: (free[host], host))
            if owner:
                client.srem(assigned_key(owner), entry)
            client.sadd(assigned_key(target), entry)
            client.hset(coordination.key(OWNERS), entry, target)
        client.srem(coordination.key(WAITING), entry)
        client.lpush(doorbell_key(target), json.dumps({"op": "start", "item": entry}))
        client.expire(doorbell_key(target), 300)
        return True
    except redis.RedisError:
        logger.warning("fleet: %s=%s not assigned now (Redis unreachable)", kind, key)
        return False


def ring(token: str | None, kind: str, key) -> None:
    """Tell the host holding a connection that a command waits for it (one Redis list per
    host, read by one blocking pop: no connection per listener)."""
    host = host_of(token)
    if not host:
        return
    client = coordination.redis_client()
    name = doorbell_key(host)
    client.rpush(name, json.dumps({"op": "command", "item": item(kind, key)}))
    client.expire(name, 300)


def now() -> float:
    return time.time()
