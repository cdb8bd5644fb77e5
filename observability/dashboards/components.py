"""What a dashboard page is made of: headline figures, charts and tables, as data that one
template renders (observability/templates/observability/dashboard.html).

A table's cells are formatted once, here, so the page and its CSV export carry the same text.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gateway.models import Team
from observability.filters import Filters
from observability.selectors import Stats

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def as_count(value) -> str:
    return str(int(value))


def as_usd(value) -> str:
    return f"{Decimal(value):.6f}"


def as_percent(value) -> str:
    return f"{value * 100:.2f}"


def as_ms(value) -> str:
    return f"{value:.1f}"


def as_text(value) -> str:
    return "" if value is None else str(value)


def blank_if_none(format_value: Callable[[object], str]) -> Callable[[object], str]:
    """Blank where there is nothing to show (no limit, no budget)."""
    return lambda value: "" if value is None else format_value(value)


def bucket_label(filters: Filters, start: datetime) -> str:
    return start.strftime("%Y-%m-%d %H:00" if filters.bucket == "hour" else "%Y-%m-%d")


def key_label(prefix: str) -> str:
    return f"gw_{prefix}…" if prefix else "(no key)"


def team_label(team_id: int | None, team: Team | None) -> str:
    if team_id is None:
        return "(no team)"
    return team.name if team is not None else f"(deleted team {team_id})"


@dataclass
class Column:
    label: str
    value: Callable  # row -> raw value
    format: Callable[[object], str] = as_text
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


def stats_columns(*names: str) -> list[Column]:
    """Standard columns over a grouped row's `stats`, in the order asked for."""
    available = {
        "requests": Column("Requests", lambda r: r.stats.requests, as_count),
        "client_errors": Column("4xx", lambda r: r.stats.client_errors, as_count),
        "server_errors": Column("5xx", lambda r: r.stats.server_errors, as_count),
        "error_rate": Column("Error rate (%)", lambda r: r.stats.error_rate, as_percent),
        "p50": Column("p50 (ms)", lambda r: r.stats.p50, as_ms),
        "p95": Column("p95 (ms)", lambda r: r.stats.p95, as_ms),
        "p99": Column("p99 (ms)", lambda r: r.stats.p99, as_ms),
        "mean": Column("Mean (ms)", lambda r: r.stats.mean_latency_ms, as_ms),
        "tokens": Column("Tokens", lambda r: r.stats.tokens, as_count),
        "cost": Column("Cost (USD)", lambda r: r.stats.cost_usd, as_usd),
        "cache_hit_rate": Column("Cache hits (%)", lambda r: r.stats.cache_hit_rate, as_percent),
        "savings": Column("Cache savings (USD)", lambda r: r.stats.savings_usd, as_usd),
        "fallbacks": Column("Fallbacks", lambda r: r.stats.fallbacks, as_count),
        "attempts": Column("Upstream attempts", lambda r: r.stats.upstream_attempts, as_count),
    }
    return [available[name] for name in names]


def percentile_datasets(stats: list[Stats]) -> list[dict]:
    """One dataset per quantile (p50, p95, p99) over these stats, in ms."""
    return [{"label": q, "data": [round(s.percentile(p), 1) for s in stats]} for q, p in QUANTILES]
