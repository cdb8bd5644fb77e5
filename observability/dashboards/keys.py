"""The Keys page: usage per key and per team, against their rate limits and budgets."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from gateway.limits import budgets
from gateway.models import APIKey, Team
from observability import selectors
from observability.dashboards.components import (
    Chart,
    Column,
    Page,
    Table,
    as_count,
    as_percent,
    as_usd,
    blank_if_none,
    key_label,
    stats_columns,
    team_label,
)
from observability.filters import Filters
from observability.rollups import DAY, floor_day
from observability.selectors import ByKeyPrefix, ByTeam, Stats

_TOP_KEYS = 20


@dataclass(frozen=True)
class KeyUsage:
    key_prefix: str
    key: APIKey | None  # None: no key given, or the key was deleted
    stats: Stats  # over the page's period and filters
    requests_today: int
    spent: Decimal | None  # in the key's current budget period; None without a budget


@dataclass(frozen=True)
class TeamUsage:
    team_id: int | None
    team: Team | None  # None: no team, or the team was deleted
    stats: Stats
    spent: Decimal | None


def build(filters: Filters, now: datetime | None = None) -> Page:
    now = now or timezone.now()
    key_rows = _key_usage(filters, now)
    team_rows = _team_usage(filters, now)
    budget_use = [(row, share) for row in team_rows if (share := _budget_share(row.team, row.spent))]
    return Page(
        title="Keys",
        charts=[
            Chart(
                "key-requests",
                "Requests by key",
                "bar",
                [key_label(row.key_prefix) for row in key_rows[:_TOP_KEYS]],
                [
                    {"label": "OK", "data": [row.stats.requests - row.stats.errors for row in key_rows[:_TOP_KEYS]]},
                    {"label": "Errors", "data": [row.stats.errors for row in key_rows[:_TOP_KEYS]]},
                ],
                stacked=True,
            ),
            Chart(
                "budget-use",
                "Budget used this period",
                "bar",
                [team_label(row.team_id, row.team) for row, _ in budget_use],
                [{"label": "% of budget", "data": [round(share * 100, 1) for _, share in budget_use]}],
                horizontal=True,
            ),
        ],
        tables=[
            Table(
                "keys",
                "Keys",
                [
                    Column("Key", lambda r: key_label(r.key_prefix), numeric=False),
                    Column("Name", lambda r: r.key.name if r.key else "", numeric=False),
                    Column("Team", lambda r: r.key.team.name if r.key and r.key.team else "", numeric=False),
                    Column("State", lambda r: _key_state(r.key, now), numeric=False),
                    *stats_columns("requests", "error_rate", "tokens", "cost"),
                    Column("Requests today", lambda r: r.requests_today, as_count),
                    Column(
                        "Requests/min limit",
                        lambda r: r.key.effective_limit("requests_per_minute") if r.key else None,
                        blank_if_none(as_count),
                    ),
                    Column("Budget (USD)", lambda r: r.key.budget_usd if r.key else None, blank_if_none(as_usd)),
                    Column("Budget period", lambda r: _period(r.key), numeric=False),
                    Column("Spent this period (USD)", lambda r: r.spent, blank_if_none(as_usd)),
                    Column("Budget used (%)", lambda r: _budget_share(r.key, r.spent), blank_if_none(as_percent)),
                ],
                key_rows,
            ),
            Table(
                "teams",
                "Teams",
                [
                    Column("Team", lambda r: team_label(r.team_id, r.team), numeric=False),
                    *stats_columns("requests", "error_rate", "tokens", "cost"),
                    Column(
                        "Requests/min limit",
                        lambda r: r.team.requests_per_minute if r.team else None,
                        blank_if_none(as_count),
                    ),
                    Column("Budget (USD)", lambda r: r.team.budget_usd if r.team else None, blank_if_none(as_usd)),
                    Column("Budget period", lambda r: _period(r.team), numeric=False),
                    Column("Spent this period (USD)", lambda r: r.spent, blank_if_none(as_usd)),
                    Column("Budget used (%)", lambda r: _budget_share(r.team, r.spent), blank_if_none(as_percent)),
                ],
                team_rows,
            ),
        ],
    )


def _key_usage(filters: Filters, now: datetime) -> list[KeyUsage]:
    """Every key with traffic in the period, busiest first."""
    rows = sorted(selectors.grouped_rows(filters, ByKeyPrefix, latency=False), key=lambda row: -row.stats.requests)
    today = Filters(floor_day(now), floor_day(now) + DAY, "day")
    requests_today = {
        row.key_prefix: row.stats.requests for row in selectors.grouped_rows(today, ByKeyPrefix, latency=False)
    }
    keys = selectors.keys_by_prefix(row.key_prefix for row in rows)
    spent = _spent_this_period(keys.values(), now)
    return [
        KeyUsage(
            row.key_prefix,
            key := keys.get(row.key_prefix),
            row.stats,
            requests_today.get(row.key_prefix, 0),
            spent.get(key.pk) if key else None,
        )
        for row in rows
    ]


def _team_usage(filters: Filters, now: datetime) -> list[TeamUsage]:
    """Every team billed in the period (and "no team"), busiest first."""
    rows = sorted(selectors.grouped_rows(filters, ByTeam, latency=False), key=lambda row: -row.stats.requests)
    teams = selectors.teams_by_id(row.team_id for row in rows)
    spent = _spent_this_period(teams.values(), now)
    return [
        TeamUsage(
            row.team_id,
            team := teams.get(row.team_id) if row.team_id is not None else None,
            row.stats,
            spent.get(team.pk) if team else None,
        )
        for row in rows
    ]


def _spent_this_period(owners: Iterable[APIKey | Team], now: datetime) -> dict[int, Decimal]:
    """{pk: spend} of the owners that have a budget, as their budget counts it, whatever the
    page's filters (budgets.spent_this_period, read for them all at once)."""
    budgeted = [owner for owner in owners if owner.budget_usd is not None]
    return dict(zip((owner.pk for owner in budgeted), budgets.spent_this_period_of(budgeted, now=now), strict=True))


def _budget_share(owner: APIKey | Team | None, spent: Decimal | None) -> float | None:
    if owner is None or not owner.budget_usd or spent is None:
        return None
    return float(spent / owner.budget_usd)


def _period(owner: APIKey | Team | None) -> str:
    return owner.get_budget_period_display() if owner is not None and owner.budget_usd is not None else ""


def _key_state(key: APIKey | None, now: datetime) -> str:
    if key is None:
        return "unknown"
    reason = key.refusal_reason(now)
    return "usable" if reason is None else reason.removeprefix("This API key ").removesuffix(".")
