"""Current usage against limits and budgets, per key and team (read by the admin)."""

from dataclasses import dataclass
from decimal import Decimal

from gateway import budgets, counters, rate_limits
from gateway.models import APIKey, Team


@dataclass(frozen=True)
class Usage:
    requests_this_minute: int | None  # None: no limit, or Redis unreachable
    requests_per_minute: int | None
    tokens_this_minute: int | None
    tokens_per_minute: int | None
    spent_usd: Decimal
    budget_usd: Decimal | None
    alert_percent: int

    @property
    def budget_share(self) -> float | None:
        if not self.budget_usd:
            return None
        return float(self.spent_usd / self.budget_usd)

    @property
    def past_alert(self) -> bool:
        share = self.budget_share
        return share is not None and share * 100 >= self.alert_percent


def key_usage(key: APIKey) -> Usage:
    try:
        requests = rate_limits.requests_this_minute(key)
        tokens = rate_limits.tokens_this_minute(key)
    except (counters.StoreDown, *counters.REDIS_ERRORS):
        requests = tokens = None
    return Usage(
        requests_this_minute=requests,
        requests_per_minute=key.effective_limit("requests_per_minute"),
        tokens_this_minute=tokens,
        tokens_per_minute=key.effective_limit("tokens_per_minute"),
        spent_usd=budgets.spent_this_period(key),
        budget_usd=key.budget_usd,
        alert_percent=key.budget_alert_percent,
    )


def team_usage(team: Team) -> Usage:
    return Usage(
        requests_this_minute=None,
        requests_per_minute=team.requests_per_minute,
        tokens_this_minute=None,
        tokens_per_minute=team.tokens_per_minute,
        spent_usd=budgets.spent_this_period(team),
        budget_usd=team.budget_usd,
        alert_percent=team.budget_alert_percent,
    )
