"""A circuit breaker per upstream version, its state in the shared cache (Redis in production).

Closed: calls pass; failures are counted in a window. At the threshold it opens: calls skip the
version until the cooldown ends, then one probe call at a time is let through (half-open); a
successful probe closes it, a failed one reopens it. Every process sees the same state, so a
failing upstream is skipped everywhere, each process taking at most BREAKER_CLOSED_REUSE_S to
notice: a process that found a breaker closed with no failures counted trusts that for so
long without reading it again (a failure of its own ends the trust at once). If the cache
itself fails, calls pass: the breaker protects the upstream, it must not become an outage of
its own.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache

from gateway.metrics import families

logger = logging.getLogger(__name__)

_closed_at: dict[int, float] = {}  # version pk -> when this process last found it closed and clean


class Breaker:
    def __init__(self, version_pk: int):
        self._version_pk = version_pk
        prefix = f"breaker:{version_pk}"
        self._failures, self._opened_at, self._probe = f"{prefix}:failures", f"{prefix}:opened", f"{prefix}:probe"
        self._seen: dict | None = None  # what allow() read, so that a success costs no more round trips

    def state(self) -> str:
        return self._state(self._read())

    def allow(self) -> bool:
        found = _closed_at.get(self._version_pk)
        if found is not None and time.monotonic() - found < settings.BREAKER_CLOSED_REUSE_S:
            self._seen = {}
            return True
        state = self.state()
        if state == "closed":
            return True
        if state == "open":
            return False
        # Half-open: the first caller to claim the probe goes; the rest keep skipping.
        return self._safely(lambda: cache.add(self._probe, 1, timeout=max(1, int(settings.BREAKER_COOLDOWN_S))), True)

    def record_success(self) -> None:
        seen = self._seen if self._seen is not None else self._read()
        if seen.get(self._opened_at) is None and not seen.get(self._failures):
            return  # closed with no failures counted: nothing to reset
        self._safely(lambda: cache.delete_many([self._failures, self._opened_at, self._probe]), None)
        if seen.get(self._opened_at) is not None:
            self._report(is_open=False)

    def record_failure(self) -> None:
        self._seen = None  # what allow() read no longer holds
        _closed_at.pop(self._version_pk, None)

        def _count():
            if cache.get(self._opened_at) is not None:  # the probe failed
                self._open()
                return
            cache.add(self._failures, 0, timeout=settings.BREAKER_WINDOW_S)
            if cache.incr(self._failures) >= settings.BREAKER_FAILURE_THRESHOLD:
                self._open()

        self._safely(_count, None)

    def _open(self) -> None:
        cache.set(self._opened_at, time.time(), timeout=None)
        cache.delete_many([self._probe, self._failures])
        logger.warning("Circuit breaker %s opened for %.0fs", self._opened_at, settings.BREAKER_COOLDOWN_S)
        self._report(is_open=True)

    def _report(self, *, is_open: bool) -> None:
        """The state for Prometheus (gateway_circuit_breaker_open), on each transition only."""
        from inference.models import ModelVersion

        try:
            names = ModelVersion.objects.filter(pk=self._version_pk).values_list("name", "version").first()
            if names:
                families.BREAKER_OPEN.labels(*names).set(1 if is_open else 0)
        except Exception:
            logger.warning("Could not report breaker %s to the metrics", self._opened_at, exc_info=True)

    def _read(self) -> dict:
        """The opened-at time and the failure count, in one round trip."""
        self._seen = self._safely(lambda: cache.get_many([self._opened_at, self._failures]), {})
        if not self._seen:
            _closed_at[self._version_pk] = time.monotonic()
        else:
            _closed_at.pop(self._version_pk, None)
        return self._seen

    def _state(self, seen: dict) -> str:
        opened_at = seen.get(self._opened_at)
        if opened_at is None:
            return "closed"
        return "open" if time.time() < opened_at + settings.BREAKER_COOLDOWN_S else "half-open"

    @staticmethod
    def _safely(operation, default):
        try:
            return operation()
        except Exception:
            logger.warning("Circuit breaker state unavailable; letting the call through", exc_info=True)
            return default
