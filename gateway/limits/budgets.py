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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.db.models import Sum
from django.utils import timezone

from gateway.api.errors import BudgetExceeded
from gateway.limits import counters
from gateway.metrics.traffic import BUDGET_ALERTS
from gateway.models import APIKey, BudgetAlert, BudgetPeriod, RequestLog, Team
from gateway.record.context import RequestContext

logger = logging.getLogger(__name__)

UNITS_PER_USD = Decimal(10**8)
_ADJECTIVES: dict[str, str] = {BudgetPeriod.DAY: "daily", BudgetPeriod.WEEK: "weekly", BudgetPeriod.MONTH: "monthly"}
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


def _counter(owner: APIKey | Team, period_start: datetime.datetime) -> str:
    return f"gw:budget:{_scope(owner)}:{owner.pk}:{owner.updated_at.timestamp():.6f}:{period_start:%Y%m%d}"


# The request log's column naming whom a row was billed to. A shadow copy names its caller's key
# only by prefix (the caller never asked for it), so no budget counts it.
_BILLED_TO = {"key": "api_key", "team": "team"}


def spent_in_log(owner: APIKey | Team, start: datetime.datetime, end: datetime.datetime) -> Decimal:
    return _spent_in_log(_scope(owner), [owner.pk], start, end).get(owner.pk, Decimal("0"))


def _spent_in_log(scope: str, ids: list[int], start: datetime.datetime, end: datetime.datetime) -> dict[int, Decimal]:
    """USD billed in [start, end) to each of these keys or teams (absent: nothing billed)."""
    column = _BILLED_TO[scope]
    rows = RequestLog.objects.filter(created_at__gte=start, created_at__lt=end, **{f"{column}__in": ids})
    return dict(rows.order_by().values_list(column).annotate(total=Sum("cost_usd")))


@dataclass
class BudgetHold:
    """A request's estimated cost reserved against one owner's budget."""

    owner: APIKey | Team
    budget_usd: Decimal  # the owner's cap (only an owner with one gets a hold)
    start: datetime.datetime
    end: datetime.datetime
    charge: counters.Charge

    @property
    def cap_units(self) -> int:
        return to_units(self.budget_usd)

    def refuse(self, current: int, ctx: RequestContext) -> None:
        left = to_usd(max(self.cap_units - current, 0))
        whose = f"team {self.owner.name!r}" if isinstance(self.owner, Team) else "this API key"
        budget = f"{self.budget_usd.normalize():f}"
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

    def reserved(self, value: int, ctx: RequestContext) -> None:
        self._alert_if_crossed(value - self.charge.amount, value)

    def actual(self, ctx: RequestContext) -> int:
        return to_units(ctx.cost_usd)

    def settled(self, before: int, after: int, ctx: RequestContext) -> None:
        self._alert_if_crossed(before, after)

    def _alert_if_crossed(self, before: int, after: int) -> None:
        threshold = self.cap_units * self.owner.budget_alert_percent / 100
        if not before < threshold <= after:
            return
        owner: dict[str, APIKey | Team] = (
            {"team": self.owner} if isinstance(self.owner, Team) else {"api_key": self.owner}
        )
        alert, created = BudgetAlert.objects.get_or_create(
            period_start=self.start,
            **owner,
            defaults={
                "threshold_percent": self.owner.budget_alert_percent,
                "budget_usd": self.budget_usd,
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
    return [
        _hold(owner, owner.budget_usd, cost)
        for owner in (key, key.team)
        if owner is not None and owner.budget_usd is not None
    ]


def _hold(owner: APIKey | Team, budget_usd: Decimal, cost: Decimal) -> BudgetHold:
    start, end = period_bounds(owner.budget_period)
    ttl_s = int((end + _TTL_AFTER_PERIOD - timezone.now()).total_seconds())
    charge = counters.Charge(_counter(owner, start), to_units(cost), to_units(budget_usd), ttl_s, seeded=True)
    return BudgetHold(owner, budget_usd, start, end, charge)


def spent_this_period(owner: APIKey | Team, *, now: datetime.datetime | None = None) -> Decimal:
    """What the owner has spent in its current budget period, as its budget counts it: the live
    counter (settled costs and the reservations of requests still running), else, without a
    counter (no budget, nothing reserved yet this period, Redis lost or down), the cost of the
    log rows billed to it in the period. The admin, /metrics and the dashboards all show this."""
    (spent,) = spent_this_period_of([owner], now=now)
    return spent


def spent_this_period_of(owners: Sequence[APIKey | Team], *, now: datetime.datetime | None = None) -> list[Decimal]:
    """spent_this_period of each owner, in order: one Redis read for all their counters, and one
    GROUP BY over the log per kind of owner and budget period for those without one."""
    now = now or timezone.now()
    spent: dict[tuple[str, int], Decimal] = {}
    budgeted = [owner for owner in owners if owner.budget_usd is not None]
    if budgeted:
        names = [_counter(owner, period_bounds(owner.budget_period, now)[0]) for owner in budgeted]
        try:
            values = counters.read(names)
        except counters.StoreDown:
            values = [None] * len(names)
        for owner, value in zip(budgeted, values, strict=True):
            if value is not None:
                spent[(_scope(owner), owner.pk)] = to_usd(value)
    unread: dict[tuple[str, str], list[int]] = defaultdict(list)
    for owner in owners:
        if (_scope(owner), owner.pk) not in spent:
            unread[(_scope(owner), owner.budget_period)].append(owner.pk)
    for (scope, period), ids in unread.items():
        for pk, total in _spent_in_log(scope, ids, *period_bounds(period, now)).items():
            spent[(scope, pk)] = total
    return [spent.get((_scope(owner), owner.pk), Decimal("0")) for owner in owners]
