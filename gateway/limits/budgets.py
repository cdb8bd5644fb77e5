"""Spend caps per key and per team, held exactly across processes.

A request reserves its estimated cost on its key's and its team's counters before the model
runs and settles the real cost after (gateway/limits/admission.py: one Lua round trip for every
counter, all-or-nothing), so concurrent requests cannot overrun a cap. Counters hold integer
units of 1e-8 USD, the request log's precision. Each is named after its owner, the owner's
last save and the period, so a changed cap or period starts a fresh count; a missing counter
(new period, lost Redis, changed settings) is rebuilt from the request log, which holds every
answered request's cost.
"""

import datetime
import logging
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.db.models import Sum
from django.utils import timezone

from gateway.api.errors import BudgetExceeded
from gateway.limits import counters
from gateway.metrics.traffic import BUDGET_ALERTS
from gateway.models import APIKey, BudgetAlert, BudgetPeriod, RequestLog, Team

logger = logging.getLogger(__name__)

UNITS_PER_USD = Decimal(10**8)
_ADJECTIVES = {BudgetPeriod.DAY: "daily", BudgetPeriod.WEEK: "weekly", BudgetPeriod.MONTH: "monthly"}
# Counters outlive their period by a day so late settlements still find them.
_TTL_AFTER_PERIOD = datetime.timedelta(days=1)


def to_units(usd: Decimal) -> int:
    return int((Decimal(usd) * UNITS_PER_USD).to_integral_value(ROUND_CEILING))


def to_usd(units: int) -> Decimal:
    return Decimal(units) / UNITS_PER_USD


def period_bounds(period: str, now: datetime.datetime | None = None) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end) of the budget period containing `now`, in UTC."""
    day = (now or timezone.now()).astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.DAY:
        return day, day + datetime.timedelta(days=1)
    if period == BudgetPeriod.WEEK:
        start = day - datetime.timedelta(days=day.weekday())
        return start, start + datetime.timedelta(days=7)
    start = day.replace(day=1)
    return start, (start + datetime.timedelta(days=32)).replace(day=1)


def _scope(owner: APIKey | Team) -> str:
    return "team" if isinstance(owner, Team) else "key"


def spent_in_log(owner: APIKey | Team, start: datetime.datetime, end: datetime.datetime) -> Decimal:
    rows = RequestLog.objects.filter(created_at__gte=start, created_at__lt=end)
    rows = rows.filter(team=owner) if isinstance(owner, Team) else rows.filter(api_key=owner)
    return rows.aggregate(total=Sum("cost_usd"))["total"] or Decimal("0")


@dataclass
class BudgetHold:
    """A request's estimated cost reserved against one owner's budget."""

    owner: APIKey | Team
    start: datetime.datetime
    end: datetime.datetime
    charge: counters.Charge

    @property
    def cap_units(self) -> int:
        return self.charge.cap

    def refuse(self, current: int, ctx) -> None:
        left = to_usd(max(self.cap_units - current, 0))
        whose = f"team {self.owner.name!r}" if isinstance(self.owner, Team) else "this API key"
        budget = f"{self.owner.budget_usd.normalize():f}"
        raise BudgetExceeded(
            f"The {_ADJECTIVES[self.owner.budget_period]} budget of {whose} ({budget} USD) does not cover this "
            f"request: {left:.8f} USD left, the request may cost up to {to_usd(self.charge.amount):.8f} USD. "
            f"It resets at {self.end.isoformat()}."
        )

    def seed(self) -> None:
        """Rebuild the missing counter from the request log."""
        spent = spent_in_log(self.owner, self.start, self.end)
        counters.seed(self.charge.key, to_units(spent), self.charge.ttl_s)
        logger.info("Budget counter %s rebuilt from the request log: %s USD", self.charge.key, spent)

    def reserved(self, value: int, ctx) -> None:
        self._alert_if_crossed(value - self.charge.amount, value)

    def actual(self, ctx) -> int:
        return to_units(ctx.cost_usd)

    def settled(self, before: int, after: int, ctx) -> None:
        self._alert_if_crossed(before, after)

    def _alert_if_crossed(self, before: int, after: int) -> None:
        threshold = self.cap_units * self.owner.budget_alert_percent / 100
        if not before < threshold <= after:
            return
        owner = {"team": self.owner} if isinstance(self.owner, Team) else {"api_key": self.owner}
        alert, created = BudgetAlert.objects.get_or_create(
            period_start=self.start,
            **owner,
            defaults={
                "threshold_percent": self.owner.budget_alert_percent,
                "budget_usd": self.owner.budget_usd,
                "spent_usd": to_usd(after),
            },
        )
        if created:  # once per owner and period, whichever process crossed first
            BUDGET_ALERTS.labels(scope=_scope(self.owner)).inc()
            logger.warning(
                "Budget alert: %s %s has spent %s of %s USD (threshold %s%%) this %s",
                _scope(self.owner),
                self.owner,
                alert.spent_usd,
                alert.budget_usd,
                alert.threshold_percent,
                self.owner.budget_period,
            )


def budget_holds(key: APIKey, cost: Decimal) -> list[BudgetHold]:
    """The key's and its team's budgets that this cost must fit (none when neither has a cap)."""
    return [_hold(owner, cost) for owner in (key, key.team) if owner is not None and owner.budget_usd is not None]


def _hold(owner: APIKey | Team, cost: Decimal) -> BudgetHold:
    start, end = period_bounds(owner.budget_period)
    counter = f"gw:budget:{_scope(owner)}:{owner.pk}:{owner.updated_at.timestamp():.6f}:{start:%Y%m%d}"
    ttl_s = int((end + _TTL_AFTER_PERIOD - timezone.now()).total_seconds())
    charge = counters.Charge(counter, to_units(cost), to_units(owner.budget_usd), ttl_s, seeded=True)
    return BudgetHold(owner, start, end, charge)


def spent_this_period(owner: APIKey | Team) -> Decimal:
    """Spend in the owner's current period (for the admin): its live counter, else the log."""
    if owner.budget_usd is not None:
        try:
            (value,) = counters.read([_hold(owner, Decimal(0)).charge.key])
        except counters.StoreDown:
            value = None
        if value is not None:
            return to_usd(value)
    return spent_in_log(owner, *period_bounds(owner.budget_period))
