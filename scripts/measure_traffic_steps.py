"""Time what traffic control adds to one request, step by step, against a real Redis.

    REDIS_URL=redis://127.0.0.1:6379/10 .venv/bin/python scripts/measure_traffic_steps.py

Uses key and team rows that are never saved (the steps read their fields only) and seeds
their budget counters, so it needs no database; it writes counters and cache entries under
their usual names in that Redis database and deletes nothing.
"""

import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIRequestFactory  # noqa: E402

from gateway.caching import response_cache  # noqa: E402
from gateway.limits import admission, budgets, counters  # noqa: E402
from gateway.limits.rate_limits import KeyRequestRateThrottle  # noqa: E402
from gateway.models import APIKey, Team  # noqa: E402
from gateway.record.context import RequestContext  # noqa: E402
from inference.models import ModelVersion  # noqa: E402

ROUNDS = 2000


def timed(label, step):
    for _ in range(100):  # warm the connection pool and the scripts
        step()
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        step()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    print(f"{label:64} median {statistics.median(samples):7.1f} µs   p99 {samples[int(ROUNDS * 0.99)]:7.1f} µs")


def main():
    if not settings.REDIS_URL:
        sys.exit("Set REDIS_URL: the point is the round trips to Redis.")
    now = timezone.now()
    team = Team(pk=10**9, name="bench", budget_usd=Decimal(10**6), updated_at=now)
    limited = APIKey(
        pk=10**9, prefix="benchkey", team=team, requests_per_minute=10**9, tokens_per_minute=10**9,
        budget_usd=Decimal(10**6), updated_at=now,
    )  # fmt: skip
    free = APIKey(pk=10**9 + 1, prefix="benchfre", updated_at=now)
    version = ModelVersion(pk=10**9, name="bench", version="1", backend="zero-shot", updated_at=now)
    factory = APIRequestFactory()

    def throttle(key):
        request = factory.post("/api/v1/predict")
        request.auth, request.ctx = key, RequestContext(api_key=key)
        KeyRequestRateThrottle().allow_request(request, None)

    def admit(key):
        ctx = RequestContext(api_key=key)
        with admission.admitted(ctx, tokens=12, cost=Decimal("0.0001")):
            ctx.input_tokens, ctx.cost_usd = 5, Decimal("0.00005")

    def cache_miss_and_store():
        ctx = RequestContext(api_key=free)
        entry = response_cache.entry(ctx, version, task="text-classification", inputs=[str(time.perf_counter())])
        entry.lookup()
        entry.store([{"label": "POSITIVE", "confidence": 0.9}])

    def cache_hit():
        ctx = RequestContext(api_key=free)
        response_cache.entry(ctx, version, task="text-classification", inputs=["the same text"]).lookup()

    response_cache.entry(
        RequestContext(api_key=free), version, task="text-classification", inputs=["the same text"]
    ).store([{"label": "POSITIVE", "confidence": 0.9}])
    for hold in budgets.budget_holds(limited, Decimal(0)):  # as if rebuilt from the log
        counters.seed(hold.charge.key, 0, 3600)
    print(f"Redis {settings.REDIS_URL}, {ROUNDS} rounds each")
    timed("requests per minute, key without a limit", lambda: throttle(free))
    timed("requests per minute, limited key (django-ratelimit)", lambda: throttle(limited))
    timed("admission, key without limits or budgets", lambda: admit(free))
    timed("admission: tokens/min + key and team budgets (reserve+settle)", lambda: admit(limited))
    timed("response cache: miss, then store", cache_miss_and_store)
    timed("response cache: hit", cache_hit)


if __name__ == "__main__":
    main()
