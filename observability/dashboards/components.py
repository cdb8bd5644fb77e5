"""What each dashboard shows: its headline figures, tables and charts, built from selectors.

A table's cells are formatted once, here, so the page and its CSV export carry the same text.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from gateway.limits import budgets
from gateway.models import APIKey, Team
from observability import selectors
from observability.filters import Filters
from observability.rollups import DAY, floor_day
from observability.selectors import Stats

_QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
_TOP = 10


def _count(value) -> str:
    return str(int(value))


def _usd(value) -> str:
    return f"{Decimal(value):.6f}"


def _percent(value) -> str:
    return f"{value * 100:.2f}"


def _ms(value) -> str:
    return f"{value:.1f}"


def _text(value) -> str:
    return "" if value is None else str(value)


@dataclass
class Column:
    label: str
    value: Callable  # row -> raw value
    format: Callable[[object], str] = _text
    numeric: bool = True


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list = field(default_factory=list)

    def header(self) -> list[str]:
        return [column.label for column in self.columns]

    def cells(self) -> list[list[str]]:
        return [[column.format(column.value(row)) for column in self.columns] for row in self.rows]

    def display_rows(self) -> list[list[tuple[str, bool]]]:
        """The cells with whether each is numeric (right-aligned on the page)."""
        numeric = [column.numeric for column in self.columns]
        return [list(zip(row, numeric, strict=True)) for row in self.cells()]


@dataclass
class Chart:
    id: str
    title: str
    kind: str  # "line" or "bar"
    labels: list[str]
    datasets: list[dict]  # {"label": ..., "data": [...]} in Chart.js's terms
    stacked: bool = False
    horizontal: bool = False
    y_title: str = ""

    @property
    def script_id(self) -> str:
        return f"chart-config-{self.id}"

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "labels": self.labels,
            "datasets": self.datasets,
            "stacked": self.stacked,
            "horizontal": self.horizontal,
            "yTitle": self.y_title,
        }


@dataclass
class Page:
    title: str
    figures: list[tuple[str, str]] = field(default_factory=list)  # (label, formatted value)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def table(self, table_id: str) -> Table | None:
        return next((table for table in self.tables if table.id == table_id), None)


def _stats_columns(get: Callable[[object], Stats], *names: str) -> list[Column]:
    """Standard columns over a row's Stats, in the order asked for."""
    available = {
        "requests": Column("Requests", lambda r: get(r).requests, _count),
        "client_errors": Column("4xx", lambda r: get(r).client_errors, _count),
        "server_errors": Column("5xx", lambda r: get(r).server_errors, _count),
        "error_rate": Column("Error rate (%)", lambda r: get(r).error_rate, _percent),
        "p50": Column("p50 (ms)", lambda r: get(r).p50, _ms),
        "p95": Column("p95 (ms)", lambda r: get(r).p95, _ms),
        "p99": Column("p99 (ms)", lambda r: get(r).p99, _ms),
        "mean": Column("Mean (ms)", lambda r: get(r).mean_latency_ms, _ms),
        "tokens": Column("Tokens", lambda r: get(r).tokens, _count),
        "cost": Column("Cost (USD)", lambda r: get(r).cost_usd, _usd),
        "cache_hit_rate": Column("Cache hits (%)", lambda r: get(r).cache_hit_rate, _percent),
        "savings": Column("Cache savings (USD)", lambda r: get(r).savings_usd, _usd),
        "fallbacks": Column("Fallbacks", lambda r: get(r).fallbacks, _count),
        "attempts": Column("Upstream attempts", lambda r: get(r).upstream_attempts, _count),
    }
    return [available[name] for name in names]


def _bucket_label(filters: Filters, start: datetime) -> str:
    return start.strftime("%Y-%m-%d %H:00" if filters.bucket == "hour" else "%Y-%m-%d")


def _series(filters: Filters, stats: dict[tuple, Stats]) -> list[tuple[str, Stats]]:
    """(label, stats) for every bucket of the period, zeros where nothing was logged."""
    return [(_bucket_label(filters, start), stats.get((start,), Stats())) for start in selectors.buckets(filters)]


def _key_names(prefixes) -> dict[str, APIKey]:
    return {
        key.prefix: key for key in APIKey.objects.select_related("team").filter(prefix__in=[p for p in prefixes if p])
    }


def _key_label(prefix: str) -> str:
    return f"gw_{prefix}…" if prefix else "(no key)"


def overview(filters: Filters) -> Page:
    series = _series(filters, selectors.grouped(filters, ("start",)))
    totals = selectors.total(stats for _, stats in series)
    errors = sorted(
        (
            (status, error_type, stats)
            for (status, error_type), stats in selectors.grouped(
                filters, ("status_code", "error_type"), latency=False
            ).items()
            if status >= 400
        ),
        key=lambda row: -row[2].requests,
    )
    labels = [label for label, _ in series]
    return Page(
        title="Overview",
        figures=[
            ("Requests", _count(totals.requests)),
            ("Error rate (%)", _percent(totals.error_rate)),
            ("5xx rate (%)", _percent(totals.server_error_rate)),
            ("p50 / p95 / p99 (ms)", f"{_ms(totals.p50)} / {_ms(totals.p95)} / {_ms(totals.p99)}"),
            ("Cost (USD)", _usd(totals.cost_usd)),
            ("Cache hit rate (%)", _percent(totals.cache_hit_rate)),
            ("Cache savings (USD)", _usd(totals.savings_usd)),
        ],
        charts=[
            Chart(
                "traffic",
                "Requests",
                "bar",
                labels,
                [
                    {"label": "OK", "data": [s.requests - s.errors for _, s in series]},
                    {"label": "4xx", "data": [s.client_errors for _, s in series]},
                    {"label": "5xx", "data": [s.server_errors for _, s in series]},
                ],
                stacked=True,
            ),
            Chart(
                "latency",
                "Latency percentiles",
                "line",
                labels,
                [{"label": q, "data": [round(s.percentile(p), 1) for _, s in series]} for q, p in _QUANTILES],
                y_title="ms",
            ),
            Chart(
                "cost",
                "Cost and cache savings",
                "line",
                labels,
                [
                    {"label": "Cost", "data": [float(s.cost_usd) for _, s in series]},
                    {"label": "Cache savings", "data": [float(s.savings_usd) for _, s in series]},
                ],
                y_title="USD",
            ),
        ],
        tables=[
            Table(
                "series",
                f"By {filters.bucket}",
                [
                    Column(filters.bucket.capitalize(), lambda r: r[0], numeric=False),
                    *_stats_columns(
                        lambda r: r[1],
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
                    Column("Status", lambda r: r[0], _count),
                    Column("Error type", lambda r: r[1], numeric=False),
                    Column("Requests", lambda r: r[2].requests, _count),
                    Column(
                        "Share of requests (%)",
                        lambda r: r[2].requests / totals.requests if totals.requests else 0,
                        _percent,
                    ),
                ],
                errors,
            ),
        ],
    )


def cost(filters: Filters) -> Page:
    # A few small GROUP BYs rather than one detailed one regrouped here: each returns tens
    # or hundreds of rows, whatever the traffic.
    per_time_model = selectors.grouped(filters, ("start", "model_name"), latency=False)
    by_time = _series(filters, selectors.regroup(per_time_model, lambda g: (g[0],)))
    by_model = _by_cost(selectors.regroup(per_time_model, lambda g: (g[1],)))
    by_key = _by_cost(selectors.grouped(filters, ("key_prefix",), latency=False))
    by_team = _by_cost(selectors.grouped(filters, ("team",), latency=False))
    teams = _teams(group[0] for group, _ in by_team)
    by_version = _by_cost(selectors.grouped(filters, ("model_name", "version"), latency=False))
    totals = selectors.total(stats for _, stats in by_time)
    names = _key_names(group[0] for group, _ in by_key)
    charged_models = [group[0] for group, stats in by_model if stats.cost_usd]
    starts = selectors.buckets(filters)

    def share(row) -> float:
        return float(row[1].cost_usd / totals.cost_usd) if totals.cost_usd else 0.0

    key_columns = [
        Column("Key", lambda r: _key_label(r[0][0]), numeric=False),
        Column("Name", lambda r: names[r[0][0]].name if r[0][0] in names else "", numeric=False),
    ]
    return Page(
        title="Cost",
        figures=[
            ("Cost (USD)", _usd(totals.cost_usd)),
            ("Cache savings (USD)", _usd(totals.savings_usd)),
            ("Tokens", _count(totals.tokens)),
            ("Cost per 1k requests (USD)", _usd(_per_1k(totals))),
        ],
        charts=[
            Chart(
                "cost-by-model",
                f"Cost per {filters.bucket}, by model",
                "bar",
                [label for label, _ in by_time],
                [
                    {
                        "label": model or "(none)",
                        "data": [float(per_time_model.get((start, model), Stats()).cost_usd) for start in starts],
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
                [_key_label(group[0]) for group, _ in by_key[:_TOP]],
                [{"label": "Cost (USD)", "data": [float(stats.cost_usd) for _, stats in by_key[:_TOP]]}],
                horizontal=True,
            ),
        ],
        tables=[
            Table(
                "keys",
                "Top spenders (keys)",
                [
                    *key_columns,
                    *_stats_columns(lambda r: r[1], "requests", "tokens", "cost"),
                    Column("Share of cost (%)", share, _percent),
                ],
                by_key,
            ),
            Table(
                "teams",
                "By team",
                [
                    Column("Team", lambda r: _team_label(teams, r[0][0]), numeric=False),
                    *_stats_columns(lambda r: r[1], "requests", "tokens", "cost"),
                    Column("Share of cost (%)", share, _percent),
                ],
                by_team,
            ),
            Table(
                "models",
                "By model",
                [
                    Column("Model", lambda r: r[0][0] or "(none)", numeric=False),
                    *_stats_columns(lambda r: r[1], "requests", "tokens", "cost"),
                    Column("Share of cost (%)", share, _percent),
                ],
                by_model,
            ),
            Table(
                "versions",
                "By version",
                [
                    Column("Model", lambda r: r[0][0] or "(none)", numeric=False),
                    Column("Version", lambda r: r[0][1] or "(not routed)", numeric=False),
                    *_stats_columns(lambda r: r[1], "requests", "tokens", "cost"),
                    Column("Cost per 1k requests (USD)", lambda r: _per_1k(r[1]), _usd),
                ],
                by_version,
            ),
            Table(
                "time",
                f"By {filters.bucket}",
                [
                    Column(filters.bucket.capitalize(), lambda r: r[0], numeric=False),
                    *_stats_columns(lambda r: r[1], "requests", "tokens", "cost", "savings"),
                ],
                by_time,
            ),
        ],
    )


def models(filters: Filters) -> Page:
    detail = selectors.grouped(filters, ("start", "model_name", "version"))
    by_version = sorted(
        ((group, stats) for group, stats in selectors.regroup(detail, lambda g: (g[1], g[2])).items() if group[0]),
        key=lambda row: -row[1].requests,
    )
    # Charts show versions that served requests; the table also counts names never routed.
    routed = [row for row in by_version if row[0][1]]
    starts = selectors.buckets(filters)
    labels = [_bucket_label(filters, start) for start in starts]
    return Page(
        title="Models",
        charts=[
            Chart(
                "version-traffic",
                "Requests per version",
                "line",
                labels,
                [
                    {
                        "label": f"{name}:{version}",
                        "data": [detail.get((start, name, version), Stats()).requests for start in starts],
                    }
                    for (name, version), _ in routed
                ],
            ),
            Chart(
                "version-latency",
                "Latency by version",
                "bar",
                [f"{name}:{version}" for (name, version), _ in routed],
                [{"label": q, "data": [round(s.percentile(p), 1) for _, s in routed]} for q, p in _QUANTILES],
                y_title="ms",
            ),
        ],
        tables=[
            Table(
                "versions",
                "Versions",
                [
                    Column("Model", lambda r: r[0][0], numeric=False),
                    Column("Version", lambda r: r[0][1] or "(not routed)", numeric=False),
                    *_stats_columns(
                        lambda r: r[1],
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


def keys(filters: Filters, now: datetime | None = None) -> Page:
    """Usage per key and per team, against their rate limits and budgets."""
    now = now or timezone.now()
    by_key = sorted(selectors.grouped(filters, ("key_prefix",), latency=False).items(), key=lambda r: -r[1].requests)
    by_team = sorted(selectors.grouped(filters, ("team",), latency=False).items(), key=lambda r: -r[1].requests)
    today = selectors.grouped(Filters(floor_day(now), floor_day(now) + DAY, "day"), ("key_prefix",), latency=False)
    names = _key_names(group[0] for group, _ in by_key)
    teams = _teams(group[0] for group, _ in by_team)
    key_spend = _spent_this_period("key_prefix", names.values(), now)
    team_spend = _spent_this_period("team", teams.values(), now)

    def key_of(row) -> APIKey | None:
        return names.get(row[0][0])

    def key_spent(row):
        key = key_of(row)
        return key_spend.get((key.budget_period, key.prefix)) if key else None

    def team_spent(row):
        team = teams.get(row[0][0])
        return team_spend.get((team.budget_period, team.pk)) if team else None

    return Page(
        title="Keys",
        charts=[
            Chart(
                "key-requests",
                "Requests by key",
                "bar",
                [_key_label(group[0]) for group, _ in by_key[: _TOP * 2]],
                [
                    {"label": "OK", "data": [s.requests - s.errors for _, s in by_key[: _TOP * 2]]},
                    {"label": "Errors", "data": [s.errors for _, s in by_key[: _TOP * 2]]},
                ],
                stacked=True,
            ),
            Chart(
                "budget-use",
                "Budget used this period",
                "bar",
                [
                    _team_label(teams, group[0])
                    for group, _ in by_team
                    if _budget_share(teams.get(group[0]), team_spent((group,)))
                ],
                [
                    {
                        "label": "% of budget",
                        "data": [
                            round(share * 100, 1)
                            for group, _ in by_team
                            if (share := _budget_share(teams.get(group[0]), team_spent((group,))))
                        ],
                    }
                ],
                horizontal=True,
            ),
        ],
        tables=[
            Table(
                "keys",
                "Keys",
                [
                    Column("Key", lambda r: _key_label(r[0][0]), numeric=False),
                    Column("Name", lambda r: key_of(r).name if key_of(r) else "", numeric=False),
                    Column(
                        "Team", lambda r: key_of(r).team.name if key_of(r) and key_of(r).team else "", numeric=False
                    ),
                    Column("State", lambda r: _key_state(key_of(r), now), numeric=False),
                    *_stats_columns(lambda r: r[1], "requests", "error_rate", "tokens", "cost"),
                    Column("Requests today", lambda r: today.get(r[0], Stats()).requests, _count),
                    Column(
                        "Requests/min limit",
                        lambda r: key_of(r).effective_limit("requests_per_minute") if key_of(r) else None,
                        _optional(_count),
                    ),
                    Column("Budget (USD)", lambda r: key_of(r).budget_usd if key_of(r) else None, _optional(_usd)),
                    Column("Budget period", lambda r: _period(key_of(r)), numeric=False),
                    Column("Spent this period (USD)", key_spent, _optional(_usd)),
                    Column(
                        "Budget used (%)",
                        lambda r: _budget_share(key_of(r), key_spent(r)),
                        _optional(_percent),
                    ),
                ],
                by_key,
            ),
            Table(
                "teams",
                "Teams",
                [
                    Column("Team", lambda r: _team_label(teams, r[0][0]), numeric=False),
                    *_stats_columns(lambda r: r[1], "requests", "error_rate", "tokens", "cost"),
                    Column(
                        "Requests/min limit",
                        lambda r: teams[r[0][0]].requests_per_minute if r[0][0] in teams else None,
                        _optional(_count),
                    ),
                    Column(
                        "Budget (USD)",
                        lambda r: teams[r[0][0]].budget_usd if r[0][0] in teams else None,
                        _optional(_usd),
                    ),
                    Column("Budget period", lambda r: _period(teams.get(r[0][0])), numeric=False),
                    Column("Spent this period (USD)", team_spent, _optional(_usd)),
                    Column(
                        "Budget used (%)",
                        lambda r: _budget_share(teams.get(r[0][0]), team_spent(r)),
                        _optional(_percent),
                    ),
                ],
                by_team,
            ),
        ],
    )


def _spent_this_period(dimension: str, owners, now: datetime) -> dict[tuple, Decimal]:
    """Spend of each budgeted key or team in its current budget period, from the daily rollups
    (periods start at midnight UTC): {(period, prefix or team id): USD}. All traffic counts,
    whatever the page's filters, as it does for the budget itself."""
    spent = {}
    for period in {owner.budget_period for owner in owners if owner.budget_usd is not None}:
        start, end = budgets.period_bounds(period, now)
        for (value,), stats in selectors.grouped(Filters(start, end, "day"), (dimension,), latency=False).items():
            spent[(period, value)] = stats.cost_usd
    return spent


def _budget_share(owner, spent) -> float | None:
    if owner is None or not owner.budget_usd or spent is None:
        return None
    return float(spent / owner.budget_usd)


def _period(owner) -> str:
    return owner.get_budget_period_display() if owner is not None and owner.budget_usd is not None else ""


def _optional(format_value: Callable[[object], str]) -> Callable[[object], str]:
    """Blank where there is nothing to show (no limit, no budget)."""
    return lambda value: "" if value is None else format_value(value)


def _teams(ids) -> dict[int, Team]:
    return {team.pk: team for team in Team.objects.filter(pk__in=[i for i in ids if i is not None])}


def _team_label(teams: dict[int, Team], team_id: int | None) -> str:
    if team_id is None:
        return "(no team)"
    return teams[team_id].name if team_id in teams else f"(deleted team {team_id})"


def _key_state(key: APIKey | None, now: datetime) -> str:
    if key is None:
        return "unknown"
    reason = key.refusal_reason(now)
    return "usable" if reason is None else reason.removeprefix("This API key ").removesuffix(".")


def _by_cost(stats: dict[tuple, Stats]) -> list[tuple[tuple, Stats]]:
    return sorted(stats.items(), key=lambda row: (-row[1].cost_usd, -row[1].requests))


def _per_1k(stats: Stats) -> Decimal:
    return stats.cost_usd * 1000 / stats.requests if stats.requests else Decimal(0)


PAGES = {"overview": overview, "cost": cost, "models": models, "keys": keys}
