from decimal import Decimal

from inference.models import ModelVersion

_PER_1K = Decimal(1000)


def cost_of(version: ModelVersion, input_tokens: int, output_tokens: int) -> Decimal:
    return (
        version.cost_per_request
        + version.input_cost_per_1k * input_tokens / _PER_1K
        + version.output_cost_per_1k * output_tokens / _PER_1K
    )


def charge(ctx, version: ModelVersion, input_tokens: int, output_tokens: int) -> None:
    """Put tokens and their cost at the version's current prices on the request's log context.

    The unit prices go on the row too, so later price edits do not rewrite history; a
    version with no price is flagged rather than silently costed at $0.
    """
    ctx.input_tokens, ctx.output_tokens = input_tokens, output_tokens
    ctx.cost_usd = cost_of(version, input_tokens, output_tokens)
    ctx.input_price_per_1k = version.input_cost_per_1k
    ctx.output_price_per_1k = version.output_cost_per_1k
    ctx.price_missing = not version.is_priced
