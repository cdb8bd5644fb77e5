"""Integer counters that tokens-per-minute limits and budgets reserve against.

On Redis (production, tests) the counters are shared by every process and a reservation over
several counters is one Lua script: one round trip, all-or-nothing, so concurrent requests in
any number of processes cannot both take the last of a cap. Without Redis (the embedded
`make run` mode) they live in this process's memory, like the local-memory cache there.

Redis failures surface as `StoreDown`; callers decide whether to fail open or closed.
"""

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from gateway.api.errors import LimitsUnavailable

logger = logging.getLogger(__name__)

REDIS_ERRORS = (ConnectionInterrupted, RedisError, OSError)

# KEYS: counters, then optionally a key's set of requests in flight (gateway/limits/in_flight.py).
# ARGV[1]: the number of counters n. Per counter i, ARGV[3i-1..3i+1]: amount, cap (-1: none)
# and a TTL in seconds for a counter created here, or -1 for one that must exist (a budget,
# seeded from the request log). For the set: its cap, the request's member and how long the
# member may stay; Redis's own clock scores members, so machines with skewed clocks agree.
# Returns {1, value1, ..., valueN}, {0, i, current} when counter i would pass its cap, {-1, i}
# when counter i must be seeded first, or {-2, held} when the set is full.
_RESERVE = """
local n = tonumber(ARGV[1])
local created = {}
for i = 1, n do
  local amount, cap, ttl = tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i]), tonumber(ARGV[3*i+1])
  local current = redis.call('GET', KEYS[i])
  if not current then
    if ttl < 0 then return {-1, i} end
    current = 0
    created[i] = true
  end
  current = tonumber(current)
  if cap >= 0 and current + amount > cap then return {0, i, current} end
end
local place = KEYS[n + 1]
local now
if place then
  now = tonumber(redis.call('TIME')[1])
  redis.call('ZREMRANGEBYSCORE', place, '-inf', now)
  local held = redis.call('ZCARD', place)
  if held >= tonumber(ARGV[3*n+2]) then return {-2, held} end
end
local result = {1}
for i = 1, n do
  result[i + 1] = redis.call('INCRBY', KEYS[i], ARGV[3*i-1])
  if created[i] then redis.call('EXPIRE', KEYS[i], ARGV[3*i+1]) end
end
if place then
  local stay = tonumber(ARGV[3*n+4])
  redis.call('ZADD', place, now + stay, ARGV[3*n+3])
  redis.call('EXPIRE', place, stay)
end
return result
"""

# ARGV[1]: the number of counters n. Adds ARGV[i+1] to counter KEYS[i] only where it still
# exists: a counter that expired or was lost is rebuilt from the request log, and a
# settlement must not recreate it half-counted. KEYS[n+1], when given, is a set of requests in
# flight that member ARGV[n+2] leaves. Returns {exists1, value1, exists2, value2, ...}.
_ADJUST = """
local n = tonumber(ARGV[1])
local result = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    result[2*i-1] = 1
    result[2*i] = redis.call('INCRBY', KEYS[i], ARGV[i+1])
  else
    result[2*i-1] = 0
    result[2*i] = 0
  end
end
if KEYS[n + 1] then redis.call('ZREM', KEYS[n + 1], ARGV[n+2]) end
return result
"""


class StoreDown(Exception):
    """The shared counter store (Redis) cannot be reached."""


@dataclass(frozen=True)
class Charge:
    key: str
    amount: int
    cap: int | None  # None: count only
    ttl_s: int  # expiry of a counter this charge creates
    seeded: bool = False  # must exist already; when missing, seed it and retry


class Refused(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing calls
    current: int


class Missing(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing calls


@dataclass(frozen=True)
class Place:
    """A request's place in its key's capped set of requests in flight."""

    key: str
    member: str
    cap: int
    hold_s: int  # how long the member counts if nobody removes it (its holder crashed)


class Crowded(NamedTuple):
    held: int  # the places taken, all of them


_last_warned: dict[str, float] = {}


def store_down(what: str, exc: Exception, *, fail_open: bool) -> None:
    """Apply the Redis-down policy of one step: carry on unchecked (open) or refuse with 503 (closed)."""
    now = time.monotonic()
    # One line per step every 10 s: at hundreds of requests a second, a line each would bury the log.
    if now - _last_warned.get(what, -10.0) > 10:
        _last_warned[what] = now
        logger.warning("Redis unreachable: %s %s (%s)", what, "skipped" if fail_open else "refusing requests", exc)
    if not fail_open:
        raise LimitsUnavailable(f"The {what} cannot be checked right now; retry shortly.")


def uses_redis() -> bool:
    return settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"


def reserve(charges: list[Charge], place: Place | None = None) -> list[int] | Refused | Missing | Crowded:
    """Add every charge if each stays within its cap and take the place if one is free, else
    change nothing; the counters' new values on success."""
    if not uses_redis():
        return _local.reserve(charges, place)
    keys = [c.key for c in charges]
    args: list = [len(charges)]
    for charge in charges:
        args += [charge.amount, -1 if charge.cap is None else charge.cap, -1 if charge.seeded else charge.ttl_s]
    if place is not None:
        keys.append(place.key)
        args += [place.cap, place.member, place.hold_s]
    with redis_client() as client:
        result = client.register_script(_RESERVE)(keys=keys, args=args)
    if result[0] == 1:
        return [int(value) for value in result[1:]]
    if result[0] == 0:
        return Refused(int(result[1]) - 1, int(result[2]))
    if result[0] == -2:
        return Crowded(int(result[1]))
    return Missing(int(result[1]) - 1)


def adjust(deltas: list[tuple[str, int]], leave: Place | None = None) -> list[int | None]:
    """Add each delta to its counter where the counter exists, and give up the place if one is
    held; the counters' new values (None: absent)."""
    if not uses_redis():
        return _local.adjust(deltas, leave)
    keys = [k for k, _ in deltas] + ([leave.key] if leave else [])
    args = [len(deltas), *(d for _, d in deltas)] + ([leave.member] if leave else [])
    with redis_client() as client:
        result = client.register_script(_ADJUST)(keys=keys, args=args)
    return [int(result[i + 1]) if result[i] else None for i in range(0, len(result), 2)]


def seed(key: str, value: int, ttl_s: int) -> None:
    """Set a counter unless another process got there first."""
    if not uses_redis():
        return _local.seed(key, value, ttl_s)
    with redis_client() as client:
        client.set(key, value, ex=ttl_s, nx=True)


def read(keys: list[str]) -> list[int | None]:
    if not uses_redis():
        return _local.read(keys)
    with redis_client() as client:
        return [None if value is None else int(value) for value in client.mget(keys)]


@contextmanager
def redis_client():
    """The default cache's Redis client, with its failures turned into StoreDown."""
    try:
        yield get_redis_connection("default")
    except REDIS_ERRORS as exc:
        raise StoreDown(str(exc)) from exc


class _LocalCounters:
    """The same operations on this process's memory, for the embedded mode without Redis."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}
        self._places: dict[str, dict[str, float]] = {}  # set -> member -> until (monotonic)
        self._lock = threading.Lock()

    def _get(self, key):
        entry = self._values.get(key)
        if entry is None or entry[1] <= time.monotonic():
            self._values.pop(key, None)
            return None
        return entry[0]

    def _set(self, key, value, ttl_s=None):
        expires = time.monotonic() + ttl_s if ttl_s is not None else self._values[key][1]
        self._values[key] = (value, expires)

    def reserve(self, charges, place):
        with self._lock:
            current = []
            for index, charge in enumerate(charges):
                value = self._get(charge.key)
                if value is None and charge.seeded:
                    return Missing(index)
                value = value or 0
                if charge.cap is not None and value + charge.amount > charge.cap:
                    return Refused(index, value)
                current.append(value)
            if place is not None:
                members = self._places.setdefault(place.key, {})
                now = time.monotonic()
                for member in [m for m, until in members.items() if until <= now]:
                    del members[member]
                if len(members) >= place.cap:
                    return Crowded(len(members))
                members[place.member] = now + place.hold_s
            for charge, value in zip(charges, current, strict=True):
                if self._get(charge.key) is None:
                    self._set(charge.key, value + charge.amount, charge.ttl_s)
                else:
                    self._set(charge.key, value + charge.amount)
            return [value + charge.amount for charge, value in zip(charges, current, strict=True)]

    def adjust(self, deltas, leave):
        with self._lock:
            if leave is not None:
                self._places.get(leave.key, {}).pop(leave.member, None)
            result = []
            for key, delta in deltas:
                value = self._get(key)
                if value is not None:
                    value += delta
                    self._set(key, value)
                result.append(value)
            return result

    def seed(self, key, value, ttl_s):
        with self._lock:
            if self._get(key) is None:
                self._set(key, value, ttl_s)

    def read(self, keys):
        with self._lock:
            return [self._get(key) for key in keys]


_local = _LocalCounters()
