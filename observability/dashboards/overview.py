"""The Overview page: traffic, errors, latency, cost and cache savings over the period."""

from observability import selectors
from observability.dashboards.components import (
    Chart,
    Column,
    Page,
    Table,
    as_count,
    as_ms,
    as_percent,
    as_usd,
    bucket_label,
    percentile_datasets,
    stats_columns,
)
from observability.filters import Filters
from observability.selectors import ByOutcome, ByStart


def build(filters: Filters) -> Page:
    series = selectors.series(filters, selectors.grouped_rows(filters, ByStart))
    totals = selectors.total(row.stats for row in series)
    errors = sorted(
        (row for row in selectors.grouped_rows(filters, ByOutcome, latency=False) if row.status_code >= 400),
        key=lambda row: -row.stats.requests,
    )
    labels = [bucket_label(filters, row.start) for row in series]
    return Page(
        title="Overview",
        figures=[
            ("Requests", as_count(totals.requests)),
            ("Error rate (%)", as_percent(totals.error_rate)),
            ("5xx rate (%)", as_percent(totals.server_error_rate)),
            ("p50 / p95 / p99 (ms)", f"{as_ms(totals.p50)} / {as_ms(totals.p95)} / {as_ms(totals.p99)}"),
            ("Cost (USD)", as_usd(totals.cost_usd)),
            ("Cache hit rate (%)", as_percent(totals.cache_hit_rate)),
            ("Cache savings (USD)", as_usd(totals.savings_usd)),
        ],
        charts=[
            Chart(
                "traffic",
                "Requests",
                "bar",
                labels,
                [
                    {"label": "OK", "data": [row.stats.requests - row.stats.errors for row in series]},
                    {"label": "4xx", "data": [row.stats.client_errors for row in series]},
                    {"label": "5xx", "data": [row.stats.server_errors for row in series]},
                ],
                stacked=True,
            ),
            Chart(
                "latency",
                "Latency percentiles",
                "line",
                labels,
                percentile_datasets([row.stats for row in series]),
                y_title="ms",
            ),
            Chart(
                "cost",
                "Cost and cache savings",
                "line",
                labels,
                [
                    {"label": "Cost", "data": [float(row.stats.cost_usd) for row in series]},
                    {"label": "Cache savings", "data": [float(row.stats.savings_usd) for row in series]},
                ],
                y_title="USD",
            ),
        ],
        tables=[
            Table(
                "series",
                f"By {filters.bucket}",
                [
                    Column(filters.bucket.capitalize(), lambda r: bucket_label(filters, r.start), numeric=False),
                    *stats_columns(
                        "requests",
                        "client_errors",
                        "server_errors",
                        "error_rate",
                        "p50",
                        "p95",
                        "p99",
                        "cost",
                        "cache_hit_rate",
                        "savings",
                    ),
                ],
                series,
            ),
            Table(
                "errors",
                "Errors by type",
                [
                    Column("Status", lambda r: r.status_code, as_count),
                    Column("Error type", lambda r: r.error_type, numeric=False),
                    Column("Requests", lambda r: r.stats.requests, as_count),
                    Column(
                        "Share of requests (%)",
                        lambda r: r.stats.requests / totals.requests if totals.requests else 0,
                        as_percent,
                    ),
                ],
                errors,
            ),
        ],
    )
