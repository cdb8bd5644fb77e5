"""The counters behind tokens per minute and budgets, on Redis and on the embedded store."""

import pytest
from django.test import override_settings

from gateway.limits import counters
from gateway.limits.counters import Charge, Missing, Refused


@pytest.fixture(params=["redis", "local-memory"])
def store(request, monkeypatch):
    if request.param == "redis":
        if not counters.uses_redis():
            pytest.skip("needs REDIS_URL (make test)")
        yield
    else:
        monkeypatch.setattr(counters, "_local", counters._LocalCounters())  # this test's own, empty
        with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
            yield


def test_reservation_is_all_or_nothing(store):
    tokens = Charge("t:tokens", amount=5, cap=10, ttl_s=60)
    budget = Charge("t:budget", amount=3, cap=4, ttl_s=60)

    assert counters.reserve([tokens, budget]) == [5, 3]
    assert counters.reserve([tokens, budget]) == Refused(index=1, current=3)
    assert counters.read(["t:tokens", "t:budget"]) == [5, 3]


def test_uncapped_counters_only_count(store):
    assert counters.reserve([Charge("t:count", amount=10**12, cap=None, ttl_s=60)]) == [10**12]


def test_seeded_counter_must_exist_before_reserving(store):
    budget = Charge("t:seeded", amount=2, cap=10, ttl_s=60, seeded=True)

    assert counters.reserve([budget]) == Missing(index=0)
    counters.seed("t:seeded", 7, 60)
    counters.seed("t:seeded", 0, 60)  # a second process rebuilding too does not overwrite

    assert counters.reserve([budget]) == [9]
    assert counters.reserve([budget]) == Refused(index=0, current=9)


def test_settlement_adjusts_only_counters_that_still_exist(store):
    counters.reserve([Charge("t:live", amount=10, cap=None, ttl_s=60)])

    assert counters.adjust([("t:live", -4), ("t:gone", 5)]) == [6, None]
    assert counters.read(["t:gone"]) == [None]
