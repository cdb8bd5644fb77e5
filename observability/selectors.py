"""Reads for the dashboards: usage from the rollups only (never the raw request log), and the
keys and teams the rows name.

Each page runs one or two GROUP BY queries over the hourly or daily rollups of the chosen
period (the bucket decides which) and merges the rows in Python into the tables it shows,
so its cost grows with days x combinations of key, version and outcome, not with requests.
A page asks for rows of a named type (`ByKeyPrefix`, `ByVersion`...): its fields are the
rollup dimensions it is grouped by, then the `Stats` of that group.

Latency percentiles are read from the summed histogram columns, interpolated linearly
inside the bucket that holds them (as Prometheus's histogram_quantile does).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, Protocol, TypeVar

from django.db.models import Aggregate, Max, Q, Sum

from gateway.metrics.families import LATENCY_BUCKETS_MS
from gateway.models import APIKey, Team
from observability.filters import Filters
from observability.models import FOREIGN_KEYS, LATENCY_BUCKET_COLUMNS, DailyRollup, HourlyRollup

_ZERO = Decimal(0)


@dataclass
class Stats:
    """Sums over a set of rollup rows, and what the dashboards derive from them."""

    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = _ZERO
    savings_usd: Decimal = _ZERO
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    fallbacks: int = 0
    upstream_attempts: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKET_COLUMNS))

    def add(self, row: dict) -> None:
        self.requests += row["requests"] or 0
        self.client_errors += row["client_errors"] or 0
        self.server_errors += row["server_errors"] or 0
        self.cache_hits += row["cache_hits"] or 0
        self.input_tokens += row["input_tokens"] or 0
        self.output_tokens += row["output_tokens"] or 0
        self.cost_usd += row["cost_usd"] or _ZERO
        self.savings_usd += row["cost_saved_usd"] or _ZERO
        self.latency_sum_ms += row["latency_sum_ms"] or 0.0
        self.fallbacks += row["fallbacks"] or 0
        self.upstream_attempts += row["upstream_attempts"] or 0
        self.latency_max_ms = max(self.latency_max_ms, row.get("latency_max_ms") or 0.0)
        if LATENCY_BUCKET_COLUMNS[0] in row:
            for index, column in enumerate(LATENCY_BUCKET_COLUMNS):
                self.latency_buckets[index] += row[column] or 0

    def merge(self, other: "Stats") -> None:
        for name in (
            "requests",
            "client_errors",
            "server_errors",
            "cache_hits",
            "input_tokens",
            "output_tokens",
            "fallbacks",
            "upstream_attempts",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_usd += other.cost_usd
        self.savings_usd += other.savings_usd
        self.latency_sum_ms += other.latency_sum_ms
        self.latency_max_ms = max(self.latency_max_ms, other.latency_max_ms)
        self.latency_buckets = [a + b for a, b in zip(self.latency_buckets, other.latency_buckets, strict=True)]

    @property
    def errors(self) -> int:
        return self.client_errors + self.server_errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def server_error_rate(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_sum_ms / self.requests if self.requests else 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def percentile(self, q: float) -> float:
        return latency_percentile(self.latency_buckets, q, self.latency_max_ms)

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p95(self) -> float:
        return self.percentile(0.95)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


def latency_percentile(buckets: list[int], q: float, max_ms: float) -> float:
    """The q-quantile of a histogram with LATENCY_BUCKETS_MS edges (0 when it is empty)."""
    total = sum(buckets)
    if not total:
        return 0.0
    rank = q * total
    seen, lower = 0, 0.0
    uppers = (*LATENCY_BUCKETS_MS, max(max_ms, LATENCY_BUCKETS_MS[-1]))
    for count, upper in zip(buckets, uppers, strict=True):
        if count and seen + count >= rank:
            return min(lower + (upper - lower) * (rank - seen) / count, max_ms)
        seen += count
        lower = upper
    return max_ms


def grouped(filters: Filters, dims: tuple[str, ...], *, latency: bool = True) -> dict[tuple, Stats]:
    """Stats per combination of `dims` (rollup columns; "start" is the time bucket). Without
    `latency` the histogram is not summed: cheaper, for tables that show no latency."""
    stats: dict[tuple, Stats] = defaultdict(Stats)
    for row in _rows(filters, dims, latency):
        stats[tuple(row[d] for d in dims)].add(row)
    return dict(stats)


# Grouped rows: the rollup dimensions grouped by (a foreign key as its id, `<name>_id`), then
# the group's Stats.


class ByStart(NamedTuple):
    start: datetime  # the time bucket
    stats: Stats


class ByOutcome(NamedTuple):
    status_code: int
    error_type: str
    stats: Stats


class ByKeyPrefix(NamedTuple):
    key_prefix: str  # empty: no key given
    stats: Stats


class ByTeam(NamedTuple):
    team_id: int | None  # the team billed; None: none
    stats: Stats


class ByModel(NamedTuple):
    model_name: str
    stats: Stats


class ByVersion(NamedTuple):
    model_name: str
    version: str  # empty: no version served (refused before routing)
    stats: Stats


class ByStartAndModel(NamedTuple):
    start: datetime
    model_name: str
    stats: Stats


class ByStartAndVersion(NamedTuple):
    start: datetime
    model_name: str
    version: str
    stats: Stats


class Grouped(Protocol):
    """Any of the grouped rows above, read for its Stats."""

    @property
    def stats(self) -> Stats: ...


# One of the grouped row types above: its fields are the dimensions, then `stats`.
Row = TypeVar("Row", bound=NamedTuple)


def grouped_rows(filters: Filters, row: type[Row], *, latency: bool = True) -> list[Row]:
    """One `row` per combination of its dimensions in the period. Without `latency` the
    histogram is not summed: cheaper, for tables that show no latency."""
    dims = _dimensions(row)
    return [row._make((*group, stats)) for group, stats in grouped(filters, dims, latency=latency).items()]


def regroup(finer: Iterable[Grouped], row: type[Row]) -> list[Row]:
    """Merge finer rows into coarser ones, e.g. ByStartAndVersion into ByVersion."""
    fields = row._fields[:-1]
    merged: dict[tuple, Stats] = defaultdict(Stats)
    for value in finer:
        merged[tuple(getattr(value, name) for name in fields)].merge(value.stats)
    return [row._make((*group, stats)) for group, stats in merged.items()]


def series(filters: Filters, by_start: Iterable[ByStart]) -> list[ByStart]:
    """A row for every bucket of the period, zeros where nothing was logged."""
    stats = {row.start: row.stats for row in by_start}
    return [ByStart(start, stats.get(start, Stats())) for start in buckets(filters)]


def _dimensions(row: type[NamedTuple]) -> tuple[str, ...]:
    return tuple(name.removesuffix("_id") for name in row._fields[:-1])


def total(stats: Iterable[Stats]) -> Stats:
    result = Stats()
    for value in stats:
        result.merge(value)
    return result


def buckets(filters: Filters) -> list:
    """Every bucket start in the period, so quiet hours show as zeros rather than gaps."""
    starts, current = [], filters.start
    while current < filters.end:
        starts.append(current)
        current += filters.step
    return starts


def keys_by_prefix(prefixes: Iterable[str]) -> dict[str, APIKey]:
    """The keys (with their teams) that these prefixes name; a deleted key's prefix is absent."""
    return {key.prefix: key for key in APIKey.objects.select_related("team").filter(prefix__in=set(prefixes) - {""})}


def teams_by_id(ids: Iterable[int | None]) -> dict[int, Team]:
    """The teams with these ids; a deleted team's id is absent."""
    return {team.pk: team for team in Team.objects.filter(pk__in=set(ids) - {None})}


def _rows(filters: Filters, dims: tuple[str, ...], latency: bool) -> list[dict]:
    model = HourlyRollup if filters.bucket == "hour" else DailyRollup
    queryset = model.objects.filter(start__gte=filters.start, start__lt=filters.end)
    if filters.key_prefix:
        queryset = queryset.filter(key_prefix=filters.key_prefix)
    if filters.model_name:
        queryset = queryset.filter(model_name=filters.model_name)
    if filters.team:
        queryset = queryset.filter(team__name=filters.team)
    rows = (
        queryset.order_by()
        .values(*(f"{d}_id" if d in FOREIGN_KEYS else d for d in dims))
        .annotate(**_measures(latency))
    )
    return [_normalized(row) for row in rows]


def _measures(latency: bool) -> dict[str, Aggregate]:
    # Named unlike the rollup's own columns: an aggregate may not shadow a field.
    measures: dict[str, Aggregate] = {
        "requests_": Sum("requests"),
        "client_errors": Sum("requests", filter=Q(status_code__gte=400, status_code__lt=500)),
        "server_errors": Sum("requests", filter=Q(status_code__gte=500)),
        "cache_hits": Sum("requests", filter=Q(cache_hit=True)),
        "input_tokens_": Sum("input_tokens"),
        "output_tokens_": Sum("output_tokens"),
        "cost_usd_": Sum("cost_usd"),
        "cost_saved_usd_": Sum("cost_saved_usd"),
        "latency_sum_ms_": Sum("latency_sum_ms"),
        "fallbacks_": Sum("fallbacks"),
        "upstream_attempts_": Sum("upstream_attempts"),
    }
    if latency:
        measures["latency_max_ms_"] = Max("latency_max_ms")
        measures.update({f"{column}_": Sum(column) for column in LATENCY_BUCKET_COLUMNS})
    return measures


def _normalized(row: dict) -> dict:
    """Measures under the rollup's column names, a foreign key's id under the field's name."""
    return {
        name.removesuffix("_id") if name.endswith("_id") else name.removesuffix("_"): value
        for name, value in row.items()
    }
