"""Requests a key has in flight at once, capped (docs/decisions/0044-limits-by-default.md).

A stream or an upstream call holds a server thread for its whole length: without a cap one
key could hold every thread. Each request in flight is a member of its key's sorted set in
Redis, scored by the time it must be gone by (the longest any request may last, plus a
margin). A process killed mid-request leaves its member behind, and that member stops
counting once its time has passed: a crash never takes a place for good.

The throttle (gateway/limits/rate_limits.py) calls `acquire` once the key is known; the
middleware calls `release` when the response has been sent, for a stream after its last byte.
"""

import threading
import time

from django.conf import settings

from gateway.api.errors import RateLimited
from gateway.limits import counters
from gateway.record.context import RequestContext

# KEYS[1]: the key's set. ARGV: cap, member, seconds the member may stay. Redis's own clock
# scores the members, so processes on machines with skewed clocks agree.
# Returns {1, held} when the member was added, {0, held} when the cap is reached.
_ACQUIRE = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return {0, held} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, held + 1}
"""

_held: dict = {}  # request id -> the set its place is in, until released


def hold_s() -> int:
    """The longest a request may hold its place: its longest deadline, plus a margin."""
    longest = max(
        settings.GATEWAY_STREAM_DEADLINE_S, settings.GATEWAY_UPSTREAM_DEADLINE_S, settings.GATEWAY_INFERENCE_TIMEOUT_S
    )
    return int(longest) + 60


def acquire(ctx: RequestContext, key) -> None:
    """Take a place among the key's requests in flight, or raise 429 when they are all taken."""
    cap = key.effective_limit("max_in_flight")
    if cap is None:
        return
    name = f"gw:inflight:{key.pk}"
    member = str(ctx.request_id)
    try:
        if counters.uses_redis():
            with counters.redis_client() as client:
                added, held = client.register_script(_ACQUIRE)(keys=[name], args=[cap, member, hold_s()])
        else:
            added, held = _local.acquire(name, member, cap, hold_s())
    except counters.StoreDown as exc:
        counters.store_down("requests in flight", exc, fail_open=settings.GATEWAY_RATE_LIMITS_FAIL_OPEN)
        return
    if not added:
        raise RateLimited(
            retry_after=1,
            message=f"This API key has {held} requests in flight and may have {cap} at once; "
            "retry when one has finished.",
        )
    _held[ctx.request_id] = name


def release(ctx: RequestContext) -> None:
    name = _held.pop(ctx.request_id, None)
    if name is None:
        return
    try:
        if counters.uses_redis():
            with counters.redis_client() as client:
                client.zrem(name, str(ctx.request_id))
        else:
            _local.release(name, str(ctx.request_id))
    except counters.StoreDown as exc:  # the member expires on its own
        counters.store_down("requests in flight", exc, fail_open=True)


class _LocalInFlight:
    """The same on this process's memory, for the embedded mode without Redis."""

    def __init__(self):
        self._sets: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, name, member, cap, hold_s):
        now = time.monotonic()
        with self._lock:
            members = {m: until for m, until in self._sets.get(name, {}).items() if until > now}
            self._sets[name] = members
            if len(members) >= cap:
                return 0, len(members)
            members[member] = now + hold_s
            return 1, len(members)

    def release(self, name, member):
        with self._lock:
            self._sets.get(name, {}).pop(member, None)


_local = _LocalInFlight()
