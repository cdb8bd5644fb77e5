"""Per-key rate limits: requests per minute and tokens per minute, counted in Redis.

Requests per minute is a DRF throttle on every API view, counted by django-ratelimit on the
default cache (django-redis), so the count is shared by every process. Tokens per minute is a
hold that gateway/limits/admission.py reserves with the budgets before a model runs.

Both count in fixed one-minute windows (docs/decisions/0040-rate-limit-windows.md): a key can
pass up to twice its limit across a window edge, never more than its limit within a window.
Every key has both unless an operator lifts them: the defaults are GATEWAY_DEFAULT_LIMITS.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle

from gateway.api.errors import RateLimited
from gateway.limits import counters
from gateway.models import APIKey

WINDOW_S = 60
_REQUESTS_GROUP = "gw-requests-per-minute"


def _key_id(group, request) -> str:
    return str(request.auth.pk)


class KeyRequestRateThrottle(BaseThrottle):
    """Counts the key's requests in the current minute and refuses past its limit with 429.

    Runs after authentication and the scope check, so refused keys do not use up quota.
    """

    def allow_request(self, request, view):
        key = request.auth
        if isinstance(key, APIKey):
            self._count_request(request, key)
        return True

    def _count_request(self, request, key: APIKey) -> None:
        limit = key.effective_limit("requests_per_minute")
        if limit is None:
            return
        try:
            usage = get_usage(request, group=_REQUESTS_GROUP, key=_key_id, rate=(limit, WINDOW_S), increment=True)
        except counters.REDIS_ERRORS as exc:
            counters.store_down("rate limits", exc, fail_open=settings.GATEWAY_RATE_LIMITS_FAIL_OPEN)
            return
        if usage is None:  # the cache answered nothing and RATELIMIT_FAIL_OPEN is set
            return
        reset_s = max(usage["time_left"], 1)
        request.ctx.response_headers.update(
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(limit - usage["count"], 0)),
                "X-RateLimit-Reset": str(reset_s),
            }
        )
        if usage["should_limit"]:
            raise RateLimited(
                retry_after=reset_s,
                message=f"This API key is limited to {limit} requests per minute; retry in {reset_s} s.",
            )


def requests_this_minute(key: APIKey) -> int | None:
    """The key's request count in its current window (for the admin); None when not limited."""
    limit = key.effective_limit("requests_per_minute")
    if limit is None:
        return None
    usage = get_usage(None, group=_REQUESTS_GROUP, key=lambda group, request: str(key.pk), rate=(limit, WINDOW_S))
    return usage["count"] if usage else None


@dataclass
class TokenHold:
    """Tokens reserved against the key's tokens-per-minute limit for one model call."""

    key: APIKey
    limit: int
    window_start: int
    charge: counters.Charge

    def refuse(self, current: int, ctx) -> None:
        wait = self.reset_s()
        ctx.response_headers.update(self._headers(current))
        raise RateLimited(
            retry_after=wait,
            message=f"This API key is limited to {self.limit} tokens per minute and has {max(self.limit - current, 0)} "
            f"left; this request may use up to {self.charge.amount}. Retry in {wait} s.",
        )

    def reserved(self, value: int, ctx) -> None:
        ctx.response_headers.update(self._headers(value))

    def actual(self, ctx) -> int:
        return ctx.input_tokens + ctx.output_tokens

    def settled(self, before: int, after: int, ctx) -> None:
        ctx.response_headers.update(self._headers(after))

    def reset_s(self) -> int:
        return max(math.ceil(self.window_start + WINDOW_S - time.time()), 1)

    def _headers(self, used: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit-Tokens": str(self.limit),
            "X-RateLimit-Remaining-Tokens": str(max(self.limit - used, 0)),
            "X-RateLimit-Reset-Tokens": str(self.reset_s()),
        }


def token_hold(key: APIKey, tokens: int) -> TokenHold | None:
    limit = key.effective_limit("tokens_per_minute")
    if limit is None:
        return None
    window_start = int(time.time()) // WINDOW_S * WINDOW_S
    charge = counters.Charge(
        key=f"gw:tpm:{key.pk}:{window_start}", amount=max(tokens, 1), cap=limit, ttl_s=WINDOW_S + 5
    )
    return TokenHold(key, limit, window_start, charge)


def tokens_this_minute(key: APIKey) -> int | None:
    """The key's tokens in the current window (for the admin); None when not limited."""
    hold = token_hold(key, 0)
    return None if hold is None else counters.read([hold.charge.key])[0] or 0
