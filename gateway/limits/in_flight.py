"""Model calls a key has in flight at once, capped (docs/decisions/0044-limits-by-default.md).

A stream or an upstream call holds a server thread for its whole length: without a cap one
key could hold every thread. Each call in flight is a member of its key's sorted set in
Redis, scored by the time it must be gone by (the longest any call may last, plus a margin).
A process killed mid-call leaves its member behind, and that member stops counting once its
time has passed: a crash never takes a place for good.

The place is taken in the same Lua round trip that reserves the call's tokens and cost, and
given back in the one that settles them (gateway/limits/admission.py): the cap costs a
request no round trip of its own. Answers from the response cache take no place.
"""

from typing import NoReturn

from django.conf import settings

from gateway.api.errors import RateLimited
from gateway.limits import counters
from gateway.record.context import RequestContext


def hold_s() -> int:
    """The longest a call may hold its place: its longest deadline, plus a margin."""
    longest = max(
        settings.GATEWAY_STREAM_DEADLINE_S, settings.GATEWAY_UPSTREAM_DEADLINE_S, settings.GATEWAY_INFERENCE_TIMEOUT_S
    )
    return int(longest) + 60


def place(ctx: RequestContext, key) -> counters.Place | None:
    """The place this request would take among the key's calls in flight; None when uncapped
    or when the call holds no web server thread (a batch item)."""
    cap = key.effective_limit("max_in_flight")
    if cap is None or not ctx.holds_web_thread:
        return None
    return counters.Place(f"gw:inflight:{key.pk}", str(ctx.request_id), cap, hold_s())


def refuse(crowded: counters.Crowded, place: counters.Place) -> NoReturn:
    raise RateLimited(
        retry_after=1,
        message=f"This API key has {crowded.held} requests in flight and may have {place.cap} at once; "
        "retry when one has finished.",
    )
