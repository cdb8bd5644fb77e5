"""Current usage against limits and budgets, per key and team (read by the admin)."""

from dataclasses import dataclass
from decimal import Decimal

from gateway.limits import budgets, counters, rate_limits
from gateway.models import APIKey, Team


@dataclass(frozen=True)
class Usage:
    requests_this_minute: int | None  # None: no limit, or Redis unreachable
    requests_per_minute: int | None
    tokens_this_minute: int | None
    tokens_per_minute: int | None
    spent_usd: Decimal | None  # None: not summed (no budget, and the caller did not ask)
    budget_usd: Decimal | None
    alert_percent: int

    @property
    def budget_share(self) -> float | None:
        if not self.budget_usd or self.spent_usd is None:
            return None
        return float(self.spent_usd / self.budget_usd)

    @property
    def past_alert(self) -> bool:
        share = self.budget_share
        return share is not None and share * 100 >= self.alert_percent


def _spent(owner: APIKey | Team, unbudgeted: bool) -> Decimal | None:
    # Without a budget there is no live counter and the sum reads a period of the log:
    # fine for one row's page, too slow for every row of a list over a big log.
    if owner.budget_usd is None and not unbudgeted:
        return None
    return budgets.spent_this_period(owner)


def key_usage(key: APIKey, *, unbudgeted_spend: bool = False) -> Usage:
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
        spent_usd=_spent(key, unbudgeted_spend),
        budget_usd=key.budget_usd,
        alert_percent=key.budget_alert_percent,
    )


def team_usage(team: Team, *, unbudgeted_spend: bool = False) -> Usage:
    return Usage(
        requests_this_minute=None,
        requests_per_minute=team.requests_per_minute,
        tokens_this_minute=None,
        tokens_per_minute=team.tokens_per_minute,
        spent_usd=_spent(team, unbudgeted_spend),
        budget_usd=team.budget_usd,
        alert_percent=team.budget_alert_percent,
    )
