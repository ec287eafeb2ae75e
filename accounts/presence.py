"""Who of a company is online: a person is online while a socket of theirs is connected.

Kept in Redis only (no PostgreSQL write per heartbeat). Each socket renews its entry when it
connects and on every ping (the browser pings every 25 s); an entry not renewed within
PRESENCE_TTL_SECONDS is gone, so a server that died takes its sockets' presence with it.

- `presence:s:<user>`: a sorted set of the user's sockets, scored by when each expires;
- `presence:c:<company>`: a sorted set of the company's users, scored by their latest expiry.

"Away" is the person's own choice (User.is_away, toggled in the navigation): an away person
is online but takes no new conversations (teams.distribution). `presence.changed` goes to the
company when someone comes online, goes offline, or toggles away; never to other companies.
"""

import logging
import time

from django.conf import settings

from crm import coordination

logger = logging.getLogger(__name__)


def _socket_key(user_id: int) -> str:
    return f"presence:s:{user_id}"


def _company_key(company_id: int) -> str:
    return f"presence:c:{company_id}"


def _ttl() -> int:
    return settings.PRESENCE_TTL_SECONDS


def heartbeat(company_id: int, user_id: int, socket_id: str) -> bool:
    """Renew this socket's presence; True when the user was offline before it (came online)."""
    now = time.time()
    expires = now + _ttl()
    client = coordination.redis_client(timeout=2)
    pipe = client.pipeline()
    pipe.zscore(_company_key(company_id), user_id)
    pipe.zadd(_socket_key(user_id), {socket_id: expires})
    pipe.expire(_socket_key(user_id), _ttl() * 2)
    pipe.zadd(_company_key(company_id), {str(user_id): expires}, gt=True)  # adds if missing
    pipe.expire(_company_key(company_id), _ttl() * 2)
    pipe.zremrangebyscore(_company_key(company_id), "-inf", now)
    before, *_ = pipe.execute()
    return before is None or float(before) <= now


def gone(company_id: int, user_id: int, socket_id: str) -> bool:
    """This socket closed; True when it was the user's last one (went offline)."""
    now = time.time()
    client = coordination.redis_client(timeout=2)
    pipe = client.pipeline()
    pipe.zrem(_socket_key(user_id), socket_id)
    pipe.zremrangebyscore(_socket_key(user_id), "-inf", now)
    pipe.zcount(_socket_key(user_id), now, "+inf")
    *_, left = pipe.execute()
    if left:
        return False
    client.zrem(_company_key(company_id), str(user_id))
    return True


def online_user_ids(company_id: int) -> set[int]:
    """The ids of the company's people with a live socket now (away or not)."""
    raw = coordination.redis_client(timeout=2).zrangebyscore(
        _company_key(company_id), time.time(), "+inf"
    )
    return {int(value) for value in raw}


def available_user_ids(company_id: int, user_ids) -> set[int]:
    """Of `user_ids`, those online and not away (whom distribution may give a conversation)."""
    from accounts.models import User

    online = online_user_ids(company_id) & set(user_ids)
    if not online:
        return set()
    return set(
        User.objects.filter(pk__in=online, is_away=False, is_active=True).values_list(
            "pk", flat=True
        )
    )


def status_of(user, online: set[int]) -> str:
    """ "online", "away" or "offline" (what the Members page shows)."""
    if user.pk not in online:
        return "offline"
    return "away" if user.is_away else "online"


def publish_change(user) -> None:
    """Tell the user's company (only it) their presence now."""
    from messaging import events

    status = status_of(user, online_user_ids(user.company_id))
    events.publish(
        "presence.changed",
        {"user_id": user.pk, "status": status},
        groups=[events.presence_group(user.company_id)],
    )
    logger.info("presence: user=%s is %s", user.pk, status)


def socket_connected(user, socket_id: str) -> None:
    """A socket of `user` opened (or pinged): renew; tell the company if they came online."""
    try:
        if heartbeat(user.company_id, user.pk, socket_id):
            publish_change(user)
    except Exception as exc:  # presence is a nicety: never fail the socket for it
        logger.warning("presence: heartbeat failed user=%s (%s)", user.pk, exc.__class__.__name__)


def socket_closed(user, socket_id: str) -> None:
    try:
        if gone(user.company_id, user.pk, socket_id):
            publish_change(user)
    except Exception as exc:
        logger.warning("presence: leave failed user=%s (%s)", user.pk, exc.__class__.__name__)
