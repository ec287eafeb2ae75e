"""Coordination between processes through Redis: one client per process, keys carrying the
install's (or test run's) prefix, a sliding-window limiter, and leases held by a token.

Broadcast pacing and leases, the per-company send limit and the WhatsApp session lease all
use these, so each rule is written once.
"""

import logging
import threading
import time
import uuid
from collections import deque

import redis
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_clients: dict[tuple[str, float], redis.Redis] = {}


def redis_client(timeout: float = 5) -> redis.Redis:
    """This process's client of settings.REDIS_URL, one per timeout (seconds to connect and
    per command)."""
    key = (settings.REDIS_URL, timeout)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(
            key[0], socket_timeout=timeout, socket_connect_timeout=timeout
        )
    return _clients[key]


def key(name: str) -> str:
    return cache.make_key(name)


# ---------------------------------------------------------------- sliding window

# At most ARGV[1] members scored within the last ARGV[2] ms. Returns 0 while there is room
# (recording the event as member ARGV[3] when ARGV[4] is '1'), else the milliseconds until the
# oldest event leaves the window. Redis' clock, not ours.
_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], window)
  end
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


def acquire_slot(name: str, limit: int, window_seconds: float, take: bool = True) -> float:
    """Take one event from the budget `name` (limit per window): 0.0 when allowed, else the
    seconds until one is free; `take=False` only looks. Raises redis.RedisError when Redis is
    unreachable."""
    wait_ms = redis_client().eval(
        _WINDOW,
        1,
        key(name),
        limit,
        int(window_seconds * 1000),
        uuid.uuid4().hex,
        "1" if take else "0",
    )
    return int(wait_ms) / 1000.0


class LocalSlidingWindow:
    """The same rule inside one process, for when Redis is unreachable: each process then
    allows the limit on its own (never unlimited, never failing the request)."""

    def __init__(self):
        self._events: dict[str, deque] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, limit: int, window_seconds: float, take: bool = True) -> float:
        now = time.monotonic()
        with self._lock:
            events = self._events.setdefault(name, deque())
            while events and events[0] <= now - window_seconds:
                events.popleft()
            if len(events) < limit:
                if take:
                    events.append(now)
                return 0.0
            return max(0.001, events[0] + window_seconds - now)

    def clear(self):
        with self._lock:
            self._events.clear()


local_window = LocalSlidingWindow()


def acquire_slot_or_local(name: str, limit: int, window_seconds: float) -> float:
    """acquire_slot, falling back to this process's own window when Redis is down."""
    try:
        return acquire_slot(name, limit, window_seconds)
    except redis.RedisError:
        logger.warning("rate limit: Redis unreachable, limiting in this process (%s)", name)
        return local_window.acquire(name, limit, window_seconds)


def window_full(name: str, limit: int, window_seconds: float) -> float:
    """Seconds until `name` has room again (0.0: it has room now), taking nothing from it;
    this process's own window when Redis is down."""
    try:
        return acquire_slot(name, limit, window_seconds, take=False)
    except redis.RedisError:
        return local_window.acquire(name, limit, window_seconds, take=False)


# ---------------------------------------------------------------- leases

_TAKE_LEASE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def take_lease(name: str, token: str, seconds: float) -> bool:
    """Take or renew the lease `name` for `token`; False if another token holds it."""
    ttl_ms = max(int(seconds * 1000), 1)
    return bool(redis_client().eval(_TAKE_LEASE, 1, key(name), token, ttl_ms))


def release_lease(name: str, token: str) -> None:
    redis_client().eval(_RELEASE_LEASE, 1, key(name), token)


def lease_holder(name: str) -> str | None:
    value = redis_client().get(key(name))
    return value.decode() if value is not None else None
