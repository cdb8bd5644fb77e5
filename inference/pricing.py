from decimal import Decimal

from inference.models import ModelVersion

_PER_1K = Decimal(1000)


def cost_of(version: ModelVersion, input_tokens: int, output_tokens: int) -> Decimal:
    return (
        version.cost_per_request
        + version.input_cost_per_1k * input_tokens / _PER_1K
        + version.output_cost_per_1k * output_tokens / _PER_1K
    )
