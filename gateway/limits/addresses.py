"""The client's address, and the limits per address that apply before any key is looked up.

A flood of requests that fail authentication (guessed keys, junk) costs a key lookup each,
and without a key no per-key limit counts it. So each address gets two counters in Redis,
in fixed one-minute windows like the per-key limits (docs/decisions/0044-limits-by-default.md):

- failed authentications: past GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS, every request
  from the address is refused until the window ends;
- all API requests: past GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS, the same.

Both are checked in one Redis round trip by the middleware, before authentication; a refusal
is a 429 with Retry-After. An address found past a limit is refused by this process without
asking Redis again until its window ends, and its refusals are held back
GATEWAY_REFUSAL_DELAY_S first (`hold`): a client that repeats as fast as it is answered would
otherwise take as much of the cores as it is given, however cheap each refusal. A sleeping
thread costs no core; at most GATEWAY_REFUSAL_DELAY_SLOTS threads per process wait so, so that
a flood on more connections than that cannot take the threads real traffic needs (the rest
are answered at once). When Redis is down the limits are skipped.
"""

import ipaddress
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from gateway.limits import counters

WINDOW_S = 60
# Addresses this process refused, with the end of the window they were refused in and why;
# bounded (a flood from many addresses must not grow it): past the bound, the oldest go first.
_MAX_REFUSED = 10_000
_refused: dict[str, tuple[float, str]] = {}
_refused_lock = threading.Lock()
_holding: threading.BoundedSemaphore | None = None


def client_address(request) -> str | None:
    """The client's IP address: the sender, unless the sender is a trusted proxy, in which case
    the right-most X-Forwarded-For hop that is not one (hops to its left are the client's to
    write). None when that hop is not an IP address."""
    sender = _address(request.META.get("REMOTE_ADDR", ""))
    if not settings.GATEWAY_TRUST_X_FORWARDED_FOR or sender is None or not _is_trusted(sender):
        return None if sender is None else str(sender)
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    client: ipaddress.IPv4Address | ipaddress.IPv6Address | None = sender
    for hop in reversed(hops):
        client = _address(hop)
        if client is None or not _is_trusted(client):
            break
    return None if client is None else str(client)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(address) -> bool:
    return any(address in network for network in _trusted_networks(tuple(settings.GATEWAY_TRUSTED_PROXIES)))


@lru_cache(maxsize=4)
def _trusted_networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


@dataclass(frozen=True)
class Refusal:
    retry_after: int
    message: str


def admit(address: str | None) -> Refusal | None:
    """Count one API request from the address; a Refusal when the address is past a limit."""
    if address is None:
        return None
    now = time.time()
    if (known := _refused.get(address)) is not None and known[0] > now:
        return Refusal(max(math.ceil(known[0] - now), 1), known[1])
    window = int(now) // WINDOW_S * WINDOW_S
    charges = []
    failures = settings.GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS
    requests = settings.GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS
    if failures:
        # Read, not counted: an amount of 0 refused at `failures - 1` means "refuse once it is reached".
        charges.append(counters.Charge(_failures_key(address, window), 0, failures - 1, WINDOW_S + 5))
    if requests:
        charges.append(counters.Charge(f"gw:addr:req:{address}:{window}", 1, requests, WINDOW_S + 5))
    if not charges:
        return None
    try:
        result = counters.reserve(charges)
    except counters.StoreDown as exc:
        counters.store_down("per-address limits", exc, fail_open=True)
        return None
    if not isinstance(result, counters.Refused):
        return None
    retry_after = max(math.ceil(window + WINDOW_S - now), 1)
    if failures and result.index == 0:
        message = "Too many failed authentications from this address this minute; see Retry-After."
    else:
        message = f"This address is limited to {requests} requests per minute; see Retry-After."
    with _refused_lock:
        if len(_refused) >= _MAX_REFUSED:
            del _refused[next(iter(_refused))]
        _refused[address] = (window + WINDOW_S, message)
    return Refusal(retry_after, message)


def hold(refusal: Refusal) -> None:
    """Wait before a refusal is answered, while a place to wait is free."""
    global _holding
    delay = min(settings.GATEWAY_REFUSAL_DELAY_S, refusal.retry_after)
    if delay <= 0:
        return
    if _holding is None:
        _holding = threading.BoundedSemaphore(settings.GATEWAY_REFUSAL_DELAY_SLOTS)
    if _holding.acquire(blocking=False):
        try:
            time.sleep(delay)
        finally:
            _holding.release()


def count_failure(address: str | None) -> None:
    """One more failed authentication from the address (a 401 answered to it)."""
    if address is None or not settings.GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS:
        return
    window = int(time.time()) // WINDOW_S * WINDOW_S
    try:
        counters.reserve([counters.Charge(_failures_key(address, window), 1, None, WINDOW_S + 5)])
    except counters.StoreDown as exc:
        counters.store_down("per-address limits", exc, fail_open=True)


def _failures_key(address: str, window: int) -> str:
    return f"gw:addr:authfail:{address}:{window}"
