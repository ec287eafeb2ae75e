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
WAITING = "fleet:waiting"  # set: "kind|key" of wanted connections no host has room for
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
    "whatsapp:session": Kind("whatsapp:session", "whatsapp", _whatsapp_wanted),
    "telegram:account": Kind("telegram:account", "telegram", _telegram_wanted),
    "email:idle": Kind("email:idle", "email", _email_wanted),
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
    """(status, lazy label) a person should see for a WhatsApp session or Telegram account
    row (channels_integrations.status builds the one vocabulary on it)."""
    from .models import TelegramAccount, WhatsAppSession

    if isinstance(row, WhatsAppSession):
        kind, key = "whatsapp:session", row.number_id
    elif isinstance(row, TelegramAccount):
        kind, key = "telegram:account", row.pk
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
    the rest as waiting for capacity. Returns what it did."""
    client = coordination.redis_client()
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
    for entry in sorted(wanted, key=_order):
        owner = owners.get(entry)
        if owner in load and load[owner] < room[owner]:
            load[owner] += 1
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
    for host in dead:
        pipe.delete(assigned_key(host))
        pipe.srem(coordination.key(HOSTS), host)
    previous = {m.decode() for m in client.smembers(coordination.key(WAITING))}
    pipe.delete(coordination.key(WAITING))
    if waiting:
        pipe.sadd(coordination.key(WAITING), *waiting)
    pipe.execute()
    done["waiting"] = waiting
    newly = [entry for entry in waiting if entry not in previous]
    if newly:
        _tell_admins_about_waiting(newly, wanted)
    if done["assigned"] or done["unassigned"] or waiting or dead:
        logger.info(
            "fleet supervisor: hosts=%s kept=%s assigned=%s unassigned=%s waiting=%s dead=%s",
            len(hosts),
            done["kept"],
            len(done["assigned"]),
            len(done["unassigned"]),
            len(waiting),
            len(dead),
        )
    return done


def _order(entry: str):
    kind, key = split(entry)
    return (kind, key)


def _tell_admins_about_waiting(entries: list[str], wanted: dict[str, int]) -> None:
    from .connections import publish_to_admins

    by_company: dict[int, list[str]] = {}
    for entry in entries:
        by_company.setdefault(wanted[entry], []).append(entry)
    for company_id, items in by_company.items():
        logger.warning(
            "fleet: company=%s has %s connection(s) waiting for capacity", company_id, len(items)
        )
        publish_to_admins(
            company_id,
            "connection.waiting",
            {
                "connections": [
                    {"kind": split(entry)[0], "id": split(entry)[1]} for entry in items
                ],
                "detail": str(WAITING_LABEL),
            },
        )


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
