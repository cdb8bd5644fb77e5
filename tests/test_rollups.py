import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db.models import Count, Sum

from gateway.metrics.families import LATENCY_BUCKETS_MS
from gateway.models import RequestLog
from observability import rollups, selectors
from observability.filters import Filters
from observability.models import LATENCY_BUCKET_COLUMNS, DailyRollup, HourlyRollup, RollupState
from tests.factories import APIKeyFactory, ModelVersionFactory, RequestLogFactory, TeamFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)
_MEASURES = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_saved_usd",
    "fallbacks",
    "upstream_attempts",
    *LATENCY_BUCKET_COLUMNS,
)


def _random_history(rng: random.Random, rows: int, hours: int) -> list[RequestLog]:
    """Rows over the `hours` before NOW, across keys, versions, outcomes and latencies."""
    team = TeamFactory()
    keys = [APIKeyFactory(team=team), APIKeyFactory(team=team), APIKeyFactory()]
    versions = [ModelVersionFactory(), ModelVersionFactory(name="embeddings")]
    outcomes = [(200, ""), (200, ""), (200, ""), (400, "invalid_request"), (503, "model_unavailable")]
    made = []
    for _ in range(rows):
        key, version = rng.choice(keys), rng.choice(versions)
        status, error_type = rng.choice(outcomes)
        made.append(
            RequestLogFactory(
                created_at=NOW - timedelta(seconds=rng.uniform(0, hours * 3600)),
                api_key=key,
                team=key.team,
                key_prefix=key.prefix,
                model_name=version.name,
                model_version=version,
                version=version.version,
                status_code=status,
                error_type=error_type,
                # Edges included on purpose: a latency equal to an edge belongs to that edge's bucket.
                latency_ms=rng.choice([rng.uniform(0.1, 30_000), float(rng.choice(LATENCY_BUCKETS_MS)), 90_000.0]),
                input_tokens=rng.randrange(0, 200),
                output_tokens=rng.randrange(0, 50),
                cost_usd=Decimal(rng.randrange(0, 10_000)) / Decimal(10**8),
                cache_hit=(hit := status == 200 and rng.random() < 0.2),
                cost_saved_usd=Decimal(rng.randrange(1, 500)) / Decimal(10**8) if hit else Decimal(0),
                attempts=rng.choice([0, 1, 1, 2, 3]),
                fallback_used=status == 200 and rng.random() < 0.1,
            )
        )
    return made


def _expected(rows: list[RequestLog], bucket_of) -> dict[tuple, dict]:
    """The rollups computed independently, in Python, from the raw rows."""
    expected: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(_MEASURES, 0))
    for row in rows:
        group = (
            bucket_of(row.created_at),
            row.team_id,
            row.api_key_id,
            row.key_prefix,
            row.model_name,
            row.version,
            row.status_code,
            row.error_type,
            row.cache_hit,
        )
        sums = expected[group]
        sums["requests"] += 1
        sums["input_tokens"] += row.input_tokens
        sums["output_tokens"] += row.output_tokens
        sums["cost_usd"] += row.cost_usd
        sums["cost_saved_usd"] += row.cost_saved_usd
        sums["fallbacks"] += row.fallback_used
        sums["upstream_attempts"] += row.attempts
        edge_index = next((i for i, edge in enumerate(LATENCY_BUCKETS_MS) if row.latency_ms <= edge), -1)
        sums[LATENCY_BUCKET_COLUMNS[edge_index]] += 1
    return dict(expected)


def _stored(model) -> dict[tuple, dict]:
    return {
        (
            rollup.start,
            rollup.team_id,
            rollup.api_key_id,
            rollup.key_prefix,
            rollup.model_name,
            rollup.version,
            rollup.status_code,
            rollup.error_type,
            rollup.cache_hit,
        ): {name: getattr(rollup, name) for name in _MEASURES}
        for rollup in model.objects.all()
    }


def test_hourly_and_daily_rollups_equal_sums_of_the_raw_rows():
    rows = _random_history(random.Random(1), rows=400, hours=60)

    rollups.refresh(now=NOW)

    assert _stored(HourlyRollup) == _expected(rows, rollups.floor_hour)
    assert _stored(DailyRollup) == _expected(rows, rollups.floor_day)


def test_latency_sum_and_max_are_rolled_up():
    rows = _random_history(random.Random(2), rows=50, hours=3)

    rollups.refresh(now=NOW)

    hourly = HourlyRollup.objects.aggregate(total=Sum("latency_sum_ms"))["total"]
    assert hourly == pytest.approx(sum(row.latency_ms for row in rows))
    assert max(DailyRollup.objects.values_list("latency_max_ms", flat=True)) == max(row.latency_ms for row in rows)


def test_refresh_is_idempotent_and_counts_rows_logged_since():
    rows = _random_history(random.Random(3), rows=100, hours=5)
    rollups.refresh(now=NOW)
    rollups.refresh(now=NOW)

    late = RequestLogFactory(created_at=NOW - timedelta(minutes=1), key_prefix="late0000")
    rollups.refresh(now=NOW + timedelta(seconds=30))

    assert _stored(HourlyRollup) == _expected([*rows, late], rollups.floor_hour)


def test_hours_become_final_a_little_after_they_end():
    RequestLogFactory(created_at=NOW - timedelta(hours=3))

    rollups.refresh(now=NOW)
    assert RollupState.objects.get().final_before == rollups.floor_hour(NOW)

    # Right after the hour turns, the hour that just ended is still rebuilt (late commits).
    rollups.refresh(now=datetime(2026, 3, 10, 15, 1, tzinfo=UTC))
    assert RollupState.objects.get().final_before == rollups.floor_hour(NOW)

    rollups.refresh(now=datetime(2026, 3, 10, 15, 5, tzinfo=UTC))
    assert RollupState.objects.get().final_before == datetime(2026, 3, 10, 15, tzinfo=UTC)


def test_a_refresh_skips_its_turn_while_another_is_running():
    RequestLogFactory(created_at=NOW - timedelta(minutes=5))
    cache.add(rollups._REFRESH_RUNNING, "1", timeout=60)

    assert rollups.refresh(now=NOW) is None
    assert not HourlyRollup.objects.exists()

    cache.delete(rollups._REFRESH_RUNNING)
    assert rollups.refresh(now=NOW) == 1
    assert HourlyRollup.objects.get().requests == 1


def test_rebuild_recounts_final_hours_after_a_backfill():
    RequestLogFactory(created_at=NOW - timedelta(days=2))
    rollups.refresh(now=NOW)
    backfilled = RequestLogFactory(created_at=NOW - timedelta(days=2, minutes=10))
    rollups.refresh(now=NOW)
    assert HourlyRollup.objects.aggregate(total=Sum("requests"))["total"] == 1  # final hours are not rescanned

    rollups.rebuild(backfilled.created_at, NOW)

    assert HourlyRollup.objects.aggregate(total=Sum("requests"))["total"] == 2
    assert DailyRollup.objects.aggregate(total=Sum("requests"))["total"] == 2


def test_percentiles_from_rollups_fall_in_the_bucket_of_the_exact_percentile():
    rows = _random_history(random.Random(4), rows=300, hours=24)
    rollups.refresh(now=NOW)
    stats = selectors.total(
        selectors.grouped(Filters(rollups.floor_day(NOW) - timedelta(days=1), NOW, "day"), ("start",)).values()
    )
    latencies = sorted(row.latency_ms for row in rows)

    for q in (0.5, 0.95, 0.99):
        exact = latencies[math.ceil(q * len(latencies)) - 1]  # nearest rank
        edges = (0, *LATENCY_BUCKETS_MS, float("inf"))
        bucket = next(i for i in range(1, len(edges)) if exact <= edges[i])
        assert edges[bucket - 1] <= stats.percentile(q) <= min(edges[bucket], max(latencies))


def test_seedrequestlogs_adds_rows_and_rolls_them_up(default_models):
    call_command("seedrequestlogs", rows=2500, days=3, keys=5, verbosity=0)

    assert RequestLog.objects.count() == 2500
    assert HourlyRollup.objects.aggregate(total=Sum("requests"))["total"] == 2500
    assert DailyRollup.objects.aggregate(total=Sum("requests"))["total"] == 2500
    by_status = dict(RequestLog.objects.values_list("status_code").annotate(n=Count("id")))
    rolled = dict(DailyRollup.objects.values_list("status_code").annotate(n=Sum("requests")))
    assert rolled == by_status
    assert set(by_status) >= {200, 400, 503}
    assert RequestLog.objects.values("key_prefix").distinct().count() == 5
    raw_cost = RequestLog.objects.aggregate(total=Sum("cost_usd"))["total"]
    assert raw_cost > 0
    assert DailyRollup.objects.aggregate(total=Sum("cost_usd"))["total"] == raw_cost


def test_seedrequestlogs_is_reproducible_with_a_seed(default_models):
    call_command("seedrequestlogs", rows=200, days=2, keys=3, seed=7, verbosity=0)
    first = list(RequestLog.objects.order_by("id").values_list("status_code", "latency_ms", "input_tokens"))
    RequestLog.objects.all().delete()

    call_command("seedrequestlogs", rows=200, days=2, keys=3, seed=7, verbosity=0)

    assert list(RequestLog.objects.order_by("id").values_list("status_code", "latency_ms", "input_tokens")) == first
