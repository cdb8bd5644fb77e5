"""Admission of one model call: reserve its tokens and cost before it runs, settle after.

One Lua round trip reserves on every counter that applies (the key's tokens per minute, the
key's budget, its team's budget) and takes the call's place among the key's calls in flight
(gateway/limits/in_flight.py), all or nothing; keys with none of them pay nothing. Settling
gives the place back in the same round trip. The chat endpoint calls it like the local ones:

    with admission.admitted(ctx, tokens=most_tokens, cost=most_cost):
        ...  # run the model; fill ctx.input_tokens, ctx.output_tokens and ctx.cost_usd

Estimates should be upper bounds (prompt tokens + max_tokens for chat): a cap is then never
passed. Where the call outlives the `with` block (streaming), use `reserve()` and call
`settle()` on the reservation once the real figures are in ctx.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from gateway.limits import budgets, counters, in_flight, rate_limits
from gateway.record.context import RequestContext


@dataclass
class Reservation:
    ctx: RequestContext
    holds: list = field(default_factory=list)
    place: counters.Place | None = None
    settled: bool = False

    def settle(self) -> None:
        """Replace each estimate with the real figure from ctx (0 cost if the call failed), and
        give the call's place in flight back."""
        if self.settled or not (self.holds or self.place):
            return
        self.settled = True
        if self.ctx.reservation is self:
            self.ctx.reservation = None
        deltas = [(hold.charge.key, hold.actual(self.ctx) - hold.charge.amount) for hold in self.holds]
        try:
            values = counters.adjust(deltas, leave=self.place)
        except counters.StoreDown as exc:  # a place left behind stops counting once its time is up
            counters.store_down("settling usage", exc, fail_open=True)
            return
        for hold, (_, delta), value in zip(self.holds, deltas, values, strict=True):
            if value is not None:
                hold.settled(value - delta, value, self.ctx)


def reserve(ctx: RequestContext, *, tokens: int, cost: Decimal) -> Reservation:
    """Reserve, or raise 429 (tokens per minute, calls in flight) / 402 (budget) naming the
    limit that refused."""
    key = ctx.api_key
    if key is None:  # a call made by the gateway itself (no caller to limit or bill)
        return Reservation(ctx)
    token_hold = rate_limits.token_hold(key, tokens)
    budget_holds = budgets.budget_holds(key, cost)
    holds = ([token_hold] if token_hold else []) + budget_holds
    place = in_flight.place(ctx, key)
    if not holds and place is None:
        return Reservation(ctx)
    limits_open = settings.GATEWAY_RATE_LIMITS_FAIL_OPEN
    fail_open = (
        (token_hold is None or limits_open)
        and (place is None or limits_open)
        and (not budget_holds or settings.GATEWAY_BUDGETS_FAIL_OPEN)
    )
    try:
        seeded = set()
        while True:
            result = counters.reserve([hold.charge for hold in holds], place)
            if not isinstance(result, counters.Missing):
                break
            if result.index in seeded:  # gone again at once: Redis is evicting or flushing
                raise counters.StoreDown("a budget counter vanished as soon as it was rebuilt")
            holds[result.index].seed()  # type: ignore[union-attr]  # only budget counters are ever missing
            seeded.add(result.index)
    except counters.StoreDown as exc:
        counters.store_down("budgets, token limits and calls in flight", exc, fail_open=fail_open)
        return Reservation(ctx)
    if isinstance(result, counters.Crowded):
        in_flight.refuse(result, place)  # type: ignore[arg-type]  # only a place can be crowded
    if isinstance(result, counters.Refused):
        holds[result.index].refuse(result.current, ctx)
    for hold, value in zip(holds, result, strict=True):
        hold.reserved(value, ctx)
    # Settled by the caller, or by the middleware once the response is gone (a stream that
    # was never read).
    ctx.reservation = reservation = Reservation(ctx, holds, place)
    return reservation


@contextmanager
def admitted(ctx: RequestContext, *, tokens: int, cost: Decimal):
    reservation = reserve(ctx, tokens=tokens, cost=cost)
    try:
        yield reservation
    finally:
        reservation.settle()
