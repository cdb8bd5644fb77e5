"""Maintain the hourly and daily rollups of the request log (the dashboards read only these).

An hour is rebuilt as a whole from its raw rows (delete its rollup rows, insert the new sums),
so a rebuild is idempotent and a late row is counted by the next rebuild of its hour. Each
refresh rebuilds the hours that are not final yet: those from `RollupState.final_before` to
now. An hour becomes final SETTLE after it ends: a row's `created_at` is taken just before
its INSERT, which may wait for a pooled connection (DB_POOL_TIMEOUT) before it commits.

Every rebuild transaction first locks the RollupState row, so rebuilds never interleave; a
refresh also takes a flag in the cache (Redis: shared by every process and machine), so a
scheduled refresh skips its turn while another one is still running.
"""

from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from gateway.metrics import LATENCY_BUCKETS_MS
from gateway.models import RequestLog
from observability.models import DIMENSIONS, LATENCY_BUCKET_COLUMNS, DailyRollup, HourlyRollup, RollupState

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SETTLE = timedelta(minutes=2)
_STATE_ID = 1
_REFRESH_RUNNING = "observability:rollup-refresh-running"
# Longer than any refresh takes; frees the flag if a worker dies in the middle of one.
_REFRESH_RUNNING_TIMEOUT_S = 15 * 60

# RequestLog and the rollups name the key column alike; grouping by the FK groups by its id.
_GROUP_BY = [f"{name}_id" if name == "api_key" else name for name in DIMENSIONS]


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
        state = _state()
        hours = _hours(state.final_before or _first_logged_hour() or floor_hour(now), now)
        settled = floor_hour(now - SETTLE)
        for hour in hours:
            with transaction.atomic():
                state = RollupState.objects.select_for_update().get(pk=_STATE_ID)
                _rebuild_hour(hour)
                if hour + HOUR <= settled and (state.final_before is None or state.final_before < hour + HOUR):
                    state.final_before = hour + HOUR
                state.refreshed_at = timezone.now()
                state.save(update_fields=["final_before", "refreshed_at"])
        for day in sorted({floor_day(hour) for hour in hours}):
            _locked(_rebuild_day, day)
        return len(hours)
    finally:
        cache.delete(_REFRESH_RUNNING)


def rebuild(start: datetime, end: datetime) -> int:
    """Rebuild every hour overlapping [start, end), final or not (after a backfill or a repair);
    the number of hours rebuilt."""
    _state()
    hours = _hours(floor_hour(start), end - timedelta(microseconds=1)) if end > start else []
    for hour in hours:
        _locked(_rebuild_hour, hour)
    for day in sorted({floor_day(hour) for hour in hours}):
        _locked(_rebuild_day, day)
    return len(hours)


def last_refreshed_at() -> datetime | None:
    return RollupState.objects.filter(pk=_STATE_ID).values_list("refreshed_at", flat=True).first()


def _hours(first: datetime, last: datetime) -> list[datetime]:
    """The starts of the hours from `first` (an hour start) to the one holding `last`."""
    hours, hour = [], first
    while hour <= last:
        hours.append(hour)
        hour += HOUR
    return hours


def _state() -> RollupState:
    state, _ = RollupState.objects.get_or_create(pk=_STATE_ID)
    return state


def _first_logged_hour() -> datetime | None:
    first = RequestLog.objects.aggregate(first=Min("created_at"))["first"]
    return floor_hour(first) if first else None


def _locked(rebuild_one, start: datetime) -> None:
    """Run one rebuild in a transaction holding the state row (waits for a refresh in progress)."""
    with transaction.atomic():
        RollupState.objects.select_for_update().filter(pk=_STATE_ID).first()
        rebuild_one(start)


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


def _rebuild_hour(hour: datetime) -> None:
    rows = (
        RequestLog.objects.filter(created_at__gte=hour, created_at__lt=hour + HOUR)
        .order_by()
        .values(*_GROUP_BY)
        .annotate(
            requests=Count("id"),
            sum_input_tokens=Sum("input_tokens"),
            sum_output_tokens=Sum("output_tokens"),
            sum_cost_usd=Sum("cost_usd"),
            latency_sum_ms=Sum("latency_ms"),
            latency_max_ms=Max("latency_ms"),
            **_latency_buckets(),
        )
    )
    HourlyRollup.objects.filter(start=hour).delete()
    HourlyRollup.objects.bulk_create(
        [
            HourlyRollup(
                start=hour,
                input_tokens=row.pop("sum_input_tokens"),
                output_tokens=row.pop("sum_output_tokens"),
                cost_usd=row.pop("sum_cost_usd"),
                **row,
            )
            for row in rows
        ],
        batch_size=1000,
    )


def _rebuild_day(day: datetime) -> None:
    summed = ("requests", "input_tokens", "output_tokens", "cost_usd", "latency_sum_ms", *LATENCY_BUCKET_COLUMNS)
    rows = (
        HourlyRollup.objects.filter(start__gte=day, start__lt=day + DAY)
        .order_by()
        .values(*_GROUP_BY)
        .annotate(**{f"sum_{name}": Sum(name) for name in summed}, sum_latency_max_ms=Max("latency_max_ms"))
    )
    DailyRollup.objects.filter(start=day).delete()
    DailyRollup.objects.bulk_create([DailyRollup(start=day, **_unprefixed(row)) for row in rows], batch_size=1000)


def _unprefixed(row: dict) -> dict:
    return {name.removeprefix("sum_"): value for name, value in row.items()}
