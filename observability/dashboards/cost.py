"""The Cost page: spend and cache savings by time, model, key, team and version."""

from decimal import Decimal

from observability import selectors
from observability.dashboards.components import (
    Chart,
    Column,
    Page,
    Table,
    as_count,
    as_percent,
    as_usd,
    bucket_label,
    key_label,
    stats_columns,
    team_label,
)
from observability.filters import Filters
from observability.selectors import (
    ByKeyPrefix,
    ByModel,
    ByStart,
    ByStartAndModel,
    ByTeam,
    ByVersion,
    Stats,
)

_TOP = 10


def build(filters: Filters) -> Page:
    # A few small GROUP BYs rather than one detailed one regrouped here: each returns tens
    # or hundreds of rows, whatever the traffic.
    per_time_model = selectors.grouped_rows(filters, ByStartAndModel, latency=False)
    by_time = selectors.series(filters, selectors.regroup(per_time_model, ByStart))
    by_model = _by_cost(selectors.regroup(per_time_model, ByModel))
    by_key = _by_cost(selectors.grouped_rows(filters, ByKeyPrefix, latency=False))
    by_team = _by_cost(selectors.grouped_rows(filters, ByTeam, latency=False))
    by_version = _by_cost(selectors.grouped_rows(filters, ByVersion, latency=False))
    teams = selectors.teams_by_id(row.team_id for row in by_team)
    keys = selectors.keys_by_prefix(row.key_prefix for row in by_key)
    totals = selectors.total(row.stats for row in by_time)
    charged_models = [row.model_name for row in by_model if row.stats.cost_usd]
    cost_at = {(row.start, row.model_name): row.stats.cost_usd for row in per_time_model}

    def share(row) -> float:
        return float(row.stats.cost_usd / totals.cost_usd) if totals.cost_usd else 0.0

    return Page(
        title="Cost",
        figures=[
            ("Cost (USD)", as_usd(totals.cost_usd)),
            ("Cache savings (USD)", as_usd(totals.savings_usd)),
            ("Tokens", as_count(totals.tokens)),
            ("Cost per 1k requests (USD)", as_usd(_per_1k(totals))),
        ],
        charts=[
            Chart(
                "cost-by-model",
                f"Cost per {filters.bucket}, by model",
                "bar",
                [bucket_label(filters, row.start) for row in by_time],
                [
                    {
                        "label": model or "(none)",
                        "data": [float(cost_at.get((row.start, model), 0)) for row in by_time],
                    }
                    for model in charged_models
                ],
                stacked=True,
                y_title="USD",
            ),
            Chart(
                "top-spenders",
                "Top spenders",
                "bar",
                [key_label(row.key_prefix) for row in by_key[:_TOP]],
                [{"label": "Cost (USD)", "data": [float(row.stats.cost_usd) for row in by_key[:_TOP]]}],
                horizontal=True,
            ),
        ],
        tables=[
            Table(
                "keys",
                "Top spenders (keys)",
                [
                    Column("Key", lambda r: key_label(r.key_prefix), numeric=False),
                    Column("Name", lambda r: keys[r.key_prefix].name if r.key_prefix in keys else "", numeric=False),
                    *stats_columns("requests", "tokens", "cost"),
                    Column("Share of cost (%)", share, as_percent),
                ],
                by_key,
            ),
            Table(
                "teams",
                "By team",
                [
                    Column("Team", lambda r: team_label(r.team_id, teams.get(r.team_id)), numeric=False),
                    *stats_columns("requests", "tokens", "cost"),
                    Column("Share of cost (%)", share, as_percent),
                ],
                by_team,
            ),
            Table(
                "models",
                "By model",
                [
                    Column("Model", lambda r: r.model_name or "(none)", numeric=False),
                    *stats_columns("requests", "tokens", "cost"),
                    Column("Share of cost (%)", share, as_percent),
                ],
                by_model,
            ),
            Table(
                "versions",
                "By version",
                [
                    Column("Model", lambda r: r.model_name or "(none)", numeric=False),
                    Column("Version", lambda r: r.version or "(not routed)", numeric=False),
                    *stats_columns("requests", "tokens", "cost"),
                    Column("Cost per 1k requests (USD)", lambda r: _per_1k(r.stats), as_usd),
                ],
                by_version,
            ),
            Table(
                "time",
                f"By {filters.bucket}",
                [
                    Column(filters.bucket.capitalize(), lambda r: bucket_label(filters, r.start), numeric=False),
                    *stats_columns("requests", "tokens", "cost", "savings"),
                ],
                by_time,
            ),
        ],
    )


def _by_cost(rows: list) -> list:
    return sorted(rows, key=lambda row: (-row.stats.cost_usd, -row.stats.requests))


def _per_1k(stats: Stats) -> Decimal:
    return stats.cost_usd * 1000 / stats.requests if stats.requests else Decimal(0)
