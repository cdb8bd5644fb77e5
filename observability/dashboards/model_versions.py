"""The Models page: traffic, latency, errors and cost per model version."""

from observability import selectors
from observability.dashboards.components import (
    Chart,
    Column,
    Page,
    Table,
    bucket_label,
    percentile_datasets,
    stats_columns,
)
from observability.filters import Filters
from observability.selectors import ByStartAndVersion, ByVersion


def build(filters: Filters) -> Page:
    detail = selectors.grouped_rows(filters, ByStartAndVersion)
    by_version = sorted(
        (row for row in selectors.regroup(detail, ByVersion) if row.model_name),
        key=lambda row: -row.stats.requests,
    )
    # Charts show versions that served requests; the table also counts names never routed.
    routed = [row for row in by_version if row.version]
    starts = selectors.buckets(filters)
    requests_at = {(row.start, row.model_name, row.version): row.stats.requests for row in detail}
    return Page(
        title="Models",
        charts=[
            Chart(
                "version-traffic",
                "Requests per version",
                "line",
                [bucket_label(filters, start) for start in starts],
                [
                    {
                        "label": f"{row.model_name}:{row.version}",
                        "data": [requests_at.get((start, row.model_name, row.version), 0) for start in starts],
                    }
                    for row in routed
                ],
            ),
            Chart(
                "version-latency",
                "Latency by version",
                "bar",
                [f"{row.model_name}:{row.version}" for row in routed],
                percentile_datasets([row.stats for row in routed]),
                y_title="ms",
            ),
        ],
        tables=[
            Table(
                "versions",
                "Versions",
                [
                    Column("Model", lambda r: r.model_name, numeric=False),
                    Column("Version", lambda r: r.version or "(not routed)", numeric=False),
                    *stats_columns(
                        "requests",
                        "client_errors",
                        "server_errors",
                        "error_rate",
                        "p50",
                        "p95",
                        "p99",
                        "mean",
                        "tokens",
                        "cost",
                        "cache_hit_rate",
                        "fallbacks",
                        "attempts",
                    ),
                ],
                by_version,
            )
        ],
    )
