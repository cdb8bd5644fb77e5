import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from experiments.models import Experiment
    from gateway.filters.content import Policy
    from gateway.limits.admission import Reservation
    from gateway.models import APIKey
    from inference.models import ModelVersion


@dataclass
class RequestContext:
    """What one request learns on its way through the gateway; becomes its RequestLog row."""

    request_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: float = field(default_factory=time.perf_counter)
    endpoint: str = ""
    api_key: "APIKey | None" = None
    key_prefix: str = ""
    model_version: "ModelVersion | None" = None
    model_name: str = ""  # the resolved version's name
    requested_model: str = ""  # as the client sent it (client input: never a metric label)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0")
    cache_hit: bool = False
    served_stale: bool = False  # a cached answer past its freshness, because every candidate failed
    cost_saved_usd: Decimal = Decimal("0")  # a cache hit's cost had the model run
    error_type: str = ""
    input_text: str = ""
    # Time spent waiting on a model or upstream; the rest of the latency is the gateway's own.
    inference_ms: float = 0.0
    input_price_per_1k: Decimal | None = None
    output_price_per_1k: Decimal | None = None
    price_missing: bool = False
    provider: str = ""
    attempts: int = 0
    route: list[str] = field(default_factory=list)
    fallback_used: bool = False
    routing_rule: str = ""
    ttft_ms: float | None = None
    usage_estimated: bool = False
    truncated: bool = False
    output_label: str = ""
    experiment: "Experiment | None" = None
    variant: str = ""
    unit: str = ""  # a digest of the experiment unit, never the raw user id
    shadow_of: uuid.UUID | None = None
    filter_policy: "Policy | None" = None  # once the pipeline chose it
    filtered: dict[str, int] = field(default_factory=dict)  # content filter matches, by detector
    reservation: "Reservation | None" = None  # admitted and not settled yet
    # A batch item runs on a Celery worker, bounded by its concurrency: it holds no web server
    # thread, so it takes no place among its key's calls in flight.
    holds_web_thread: bool = True
    # Headers the steps want on the response whatever its status (e.g. X-RateLimit-*).
    response_headers: dict[str, str] = field(default_factory=dict)

    def set_key(self, key) -> None:
        self.api_key = key
        self.key_prefix = key.prefix

    def set_version(self, version) -> None:
        self.model_version = version
        self.model_name = version.name
