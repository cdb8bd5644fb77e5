"""Maintain the hourly and daily rollups of the request log (the dashboards read only these).

Hours are rebuilt as a whole from their raw rows (delete their rollup rows, insert the new
sums), so a rebuild is idempotent and a late row is counted by the next rebuild of its hour;
a day's row is then rebuilt from its hourly rows in the same transaction. Work goes one UTC
day at a time: one GROUP BY over that day's raw rows (or the part of it being rebuilt).

Each refresh rebuilds the hours that are not final yet: those from `RollupState.final_before`
to now. An hour becomes final SETTLE after it ends: a row's `created_at` is taken just before
its INSERT, which may wait for a pooled connection (DB_POOL_TIMEOUT) before it commits.

Every rebuild transaction first locks the RollupState row, so rebuilds never interleave; a
refresh also takes a flag in the cache (Redis: shared by every process and machine), so a
scheduled refresh skips its turn while another one is still running.
"""

from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from gateway.metrics.families import LATENCY_BUCKETS_MS
from gateway.models import RequestLog
from observability.models import (
    DIMENSIONS,
    FOREIGN_KEYS,
    LATENCY_BUCKET_COLUMNS,
    DailyRollup,
    HourlyRollup,
    RollupState,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SETTLE = timedelta(minutes=2)
_STATE_ID = 1
_REFRESH_RUNNING = "observability:rollup-refresh-running"
# Longer than any refresh takes; frees the flag if a worker dies in the middle of one.
_REFRESH_RUNNING_TIMEOUT_S = 15 * 60

# RequestLog and the rollups name these columns alike; a foreign key is grouped by its id.
_GROUP_BY = [f"{name}_id" if name in FOREIGN_KEYS else name for name in DIMENSIONS]
_SUMMED = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_saved_usd",
    "latency_sum_ms",
    "fallbacks",
    "upstream_attempts",
    *LATENCY_BUCKET_COLUMNS,
)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def refresh(now: datetime | None = None) -> int | None:
    """Rebuild every hour that is not final yet, and their days: the number of hours rebuilt,
    or None when another refresh is running (in any process: the flag is in the cache)."""
    if not cache.add(_REFRESH_RUNNING, "1", timeout=_REFRESH_RUNNING_TIMEOUT_S):
        return None
    try:
        now = now or timezone.now()
        start = _state().final_before or _first_logged_hour() or floor_hour(now)
        return _rebuild_range(start, floor_hour(now) + HOUR, final_before=floor_hour(now - SETTLE))
    finally:
        cache.delete(_REFRESH_RUNNING)


def rebuild(start: datetime, end: datetime) -> int:
    """Rebuild every hour overlapping [start, end), final or not (after a backfill or a repair);
    the number of hours rebuilt."""
    _state()
    if end <= start:
        return 0
    return _rebuild_range(floor_hour(start), floor_hour(end - timedelta(microseconds=1)) + HOUR)


def last_refreshed_at() -> datetime | None:
    return RollupState.objects.filter(pk=_STATE_ID).values_list("refreshed_at", flat=True).first()


def _state() -> RollupState:
    state, _ = RollupState.objects.get_or_create(pk=_STATE_ID)
    return state


def _first_logged_hour() -> datetime | None:
    first = RequestLog.objects.aggregate(first=Min("created_at"))["first"]
    return floor_hour(first) if first else None


def _rebuild_range(start: datetime, end: datetime, final_before: datetime | None = None) -> int:
    """Rebuild the hours in [start, end) (hour starts), one UTC day per transaction; with
    `final_before`, record that the hours before it (and rebuilt now) are final."""
    window_start = start
    while window_start < end:
        window_end = min(floor_day(window_start) + DAY, end)
        with transaction.atomic():
            # The row lock serializes every rebuild, in every process.
            state = RollupState.objects.select_for_update().get(pk=_STATE_ID)
            _rebuild_hours(window_start, window_end)
            _rebuild_day(floor_day(window_start))
            state.refreshed_at = timezone.now()
            if final_before is not None:
                reached = min(window_end, final_before)
                if state.final_before is None or state.final_before < reached:
                    state.final_before = reached
            state.save(update_fields=["final_before", "refreshed_at"])
        window_start = window_end
    return int((end - start) / HOUR)


def _latency_buckets() -> dict:
    """COUNT per histogram column: latency in (previous edge, edge], the last one above every edge."""
    counts, lower = {}, None
    for column, edge in zip(LATENCY_BUCKET_COLUMNS, (*LATENCY_BUCKETS_MS, None), strict=True):
        condition = Q()
        if lower is not None:
            condition &= Q(latency_ms__gt=lower)
        if edge is not None:
            condition &= Q(latency_ms__lte=edge)
        counts[column] = Count("id", filter=condition)
        lower = edge
    return counts


def _rebuild_hours(start: datetime, end: datetime) -> None:
    rows = (
        RequestLog.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(hour=TruncHour("created_at"))
        .order_by()
        .values("hour", *_GROUP_BY)
        .annotate(
            requests=Count("id"),
            sum_input_tokens=Sum("input_tokens"),
            sum_output_tokens=Sum("output_tokens"),
            sum_cost_usd=Sum("cost_usd"),
            sum_cost_saved_usd=Sum("cost_saved_usd"),
            latency_sum_ms=Sum("latency_ms"),
            latency_max_ms=Max("latency_ms"),
            fallbacks=Count("id", filter=Q(fallback_used=True)),
            upstream_attempts=Sum("attempts"),
            **_latency_buckets(),
        )
    )
    HourlyRollup.objects.filter(start__gte=start, start__lt=end).delete()
    HourlyRollup.objects.bulk_create(
        [HourlyRollup(start=row.pop("hour"), **_unprefixed(row)) for row in rows], batch_size=1000
    )


def _rebuild_day(day: datetime) -> None:
    rows = (
        HourlyRollup.objects.filter(start__gte=day, start__lt=day + DAY)
        .order_by()
        .values(*_GROUP_BY)
        .annotate(**{f"sum_{name}": Sum(name) for name in _SUMMED}, sum_latency_max_ms=Max("latency_max_ms"))
    )
    DailyRollup.objects.filter(start=day).delete()
    DailyRollup.objects.bulk_create([DailyRollup(start=day, **_unprefixed(row)) for row in rows], batch_size=1000)


def _unprefixed(row: dict) -> dict:
    """Aggregates are named sum_<column> where <column> is also a field of the queried model."""
    return {name.removeprefix("sum_"): value for name, value in row.items()}
