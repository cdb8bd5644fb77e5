"""Rate limits count in fixed one-minute windows; a test burst must fit inside one."""

import time

from django_ratelimit.core import get_usage

from gateway.limits import rate_limits


def seconds_left(key) -> float:
    """Time left in the key's requests window and in the tokens window, whichever ends first."""
    usage = get_usage(
        None,
        group=rate_limits._REQUESTS_GROUP,
        key=lambda group, request: str(key.pk),
        rate=(1, rate_limits.WINDOW_S),
    )
    tokens_left = rate_limits.WINDOW_S - time.time() % rate_limits.WINDOW_S
    return min(usage["time_left"], tokens_left)


def wait_for_window_room(key, seconds: float) -> None:
    # Sleeping past one window's edge can bring the other's near: look again, at most twice.
    for _ in range(3):
        left = seconds_left(key)
        if left >= seconds:
            return
        time.sleep(max(left, 0) + 1)
