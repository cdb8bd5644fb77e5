"""The gateway's Prometheus metrics, all defined here so names and labels stay consistent.

Labels are bounded and never chosen by a caller: route names (not raw paths), model names and
versions only once the registry resolved them (a requested name is client input), status
codes, error types from gateway/api/errors.py, ids. Never a key secret, a key prefix, a key's
or team's name, or request text.

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR (set and cleaned by
gunicorn.conf.py) and /metrics sums them (gateway/metrics/export.py).

Who records what:
- `observe_request` (called by gateway/record/request_log.py `record`, once per logged request):
  requests, errors, latency, gateway overhead, tokens, cost, cache hits, fallbacks, and the
  original service's three families (PREDICTION_REQUESTS, PREDICTION_LATENCY, MODEL_ERRORS).
- The content filter: FILTERED (gateway/filters/content.py `record`).
- The upstream path: UPSTREAM_RETRIES (inference/runners/upstream.py), BREAKER_OPEN (inference/breaker.py).
- Scrape time (gateway/metrics/export.py): BUDGET_USED_RATIO, BATCH_QUEUE_DEPTH, ROLLUP_LAG.
- Degraded modes: DEGRADED (gateway/db.py, gateway/record/log_writer.py), SPOOL_PENDING_BYTES and
  SPOOL_REPLAYED (gateway/record/log_writer.py).
- gateway/metrics/traffic.py adds gateway_budget_alerts_total (threshold crossings).
- gateway/metrics/gc_pauses.py: GC_PAUSE, GC_PAUSE_MAX (garbage-collector pauses of each worker).
"""

from prometheus_client import Counter, Gauge, Histogram

# Shared with the dashboards' rollups (observability.models), so a dashboard percentile and
# a Prometheus histogram_quantile() interpolate within the same bucket edges.
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 60000)
_LATENCY_BUCKETS_S = (*(ms / 1000 for ms in LATENCY_BUCKETS_MS), float("inf"))

REQUESTS = Counter(
    "gateway_requests",
    "Requests answered, by route, resolved model and version, experiment variant and status code.",
    ["endpoint", "model", "version", "variant", "status"],
)
ERRORS = Counter(
    "gateway_request_errors",
    "Requests answered with an error, by route, resolved model and error type.",
    ["endpoint", "model", "error_type"],
)
LATENCY = Histogram(
    "gateway_request_latency_seconds",
    "Time from the request reaching the gateway to its response, by route and resolved model.",
    ["endpoint", "model"],
    buckets=_LATENCY_BUCKETS_S,
)
OVERHEAD = Histogram(
    "gateway_overhead_latency_seconds",
    "The gateway's own share of the latency: total time less the time spent waiting on a model or upstream.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS_S,
)
TOKENS = Counter(
    "gateway_tokens", "Tokens processed, by model, version and direction.", ["model", "version", "direction"]
)
COST = Counter("gateway_cost_usd", "Cost charged for requests, in USD, by model and version.", ["model", "version"])
CACHE_HITS = Counter("gateway_cache_hits", "Requests answered from the response cache.", ["model", "version"])

FALLBACKS = Counter(
    "gateway_fallbacks",
    "Requests answered by a fallback version (an earlier candidate failed or its breaker was open).",
    ["model", "version"],
)
UPSTREAM_RETRIES = Counter(
    "gateway_upstream_retries",
    "Upstream attempts retried, by the failure that caused it (an HTTP status or 'connection').",
    ["model", "version", "reason"],
)
# Breaker state and budget use live in Redis, shared by all processes: whichever process
# observed them last is right, hence "mostrecent" across processes.
BREAKER_OPEN = Gauge(
    "gateway_circuit_breaker_open",
    "1 while the circuit breaker of an upstream version is open, else 0.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
BUDGET_USED_RATIO = Gauge(
    "gateway_budget_used_ratio",
    "Spend in the current budget period over the budget (1 = cap reached), per key or team id.",
    ["scope", "id"],
    multiprocess_mode="mostrecent",
)
BATCH_QUEUE_DEPTH = Gauge(
    "gateway_batch_queue_depth",
    "Messages waiting in a Celery queue, read from the broker at scrape time.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
ROLLUP_LAG = Gauge(
    "gateway_rollup_lag_seconds",
    "Seconds since the dashboards' rollups were last refreshed.",
    multiprocess_mode="mostrecent",
)
FILTERED = Counter(
    "gateway_content_filtered",
    "Matches the content filter redacted or blocked, by detector, mode and where (answer, stream, "
    "request_text, batch_input).",
    ["detector", "mode", "target"],
)

# Degraded modes (docs/reliability.md): each process says what it sees; the highest live value wins.
DEGRADED = Gauge(
    "gateway_degraded",
    "1 while this process serves in a degraded mode: reason database (PostgreSQL out of reach, log rows "
    "spooled) or request_spool_full (billable requests refused, unless configured to serve).",
    ["reason"],
    multiprocess_mode="livemax",
)
SPOOL_PENDING_BYTES = Gauge(
    "gateway_request_spool_pending_bytes",
    "Bytes of request log rows in the spool waiting for the database (GATEWAY_REQUEST_SPOOL_MAX_BYTES is the bound).",
    multiprocess_mode="livemax",
)
SPOOL_REPLAYED = Counter(
    "gateway_request_spool_replayed_rows", "Request log rows written from the spool once the database answered."
)

# A collection holds the GIL: every thread of the worker waits for it (docs/benchmarks.md).
_GC_PAUSE_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, float("inf"))
GC_PAUSE = Histogram(
    "gateway_gc_pause_seconds",
    "Garbage-collector pauses of the serving processes, by the generation collected.",
    ["generation"],
    buckets=_GC_PAUSE_BUCKETS_S,
)
# The longest pause is what stalls requests; a histogram bucket only bounds it. "max" across
# processes keeps a recycled worker's longest pause too.
GC_PAUSE_MAX = Gauge(
    "gateway_gc_pause_max_seconds",
    "The longest garbage-collector pause of any serving process since the server started, by generation.",
    ["generation"],
    multiprocess_mode="max",
)

# The original service's families, with its names, types and labels: its dashboards and alerts
# read them. `endpoint` is the matched route's path pattern (e.g. /batch_result/{task_id}).
PREDICTION_REQUESTS = Counter("prediction_requests", "Total prediction requests", ["endpoint", "status"])
PREDICTION_LATENCY = Histogram(
    "prediction_latency_seconds", "Prediction latency in seconds", ["endpoint"], buckets=_LATENCY_BUCKETS_S
)
MODEL_ERRORS = Counter("model_errors", "Total model errors", ["error_type"])


def observe_request(ctx, *, endpoint: str, route: str, status_code: int, latency_ms: float) -> None:
    """Count one answered request; `ctx` is its gateway.record.context.RequestContext, `endpoint`
    its route's name and `route` its path pattern."""
    PREDICTION_REQUESTS.labels(route, str(status_code)).inc()
    PREDICTION_LATENCY.labels(route).observe(latency_ms / 1000)
    # The model's (or its upstream's) failures, not the client's: what the original counted.
    if ctx.error_type and (status_code >= 500 or ctx.truncated):
        MODEL_ERRORS.labels(ctx.error_type).inc()
    version = ctx.model_version
    model, version_name = (version.name, version.version) if version is not None else ("", "")
    variant = ctx.variant
    REQUESTS.labels(endpoint, model, version_name, variant, str(status_code)).inc()
    if ctx.error_type:
        ERRORS.labels(endpoint, model, ctx.error_type).inc()
    LATENCY.labels(endpoint, model).observe(latency_ms / 1000)
    OVERHEAD.labels(endpoint).observe(max(latency_ms - ctx.inference_ms, 0.0) / 1000)
    if ctx.input_tokens:
        TOKENS.labels(model, version_name, "input").inc(ctx.input_tokens)
    if ctx.output_tokens:
        TOKENS.labels(model, version_name, "output").inc(ctx.output_tokens)
    if ctx.cost_usd:
        COST.labels(model, version_name).inc(float(ctx.cost_usd))
    if ctx.cache_hit:
        CACHE_HITS.labels(model, version_name).inc()
    if ctx.fallback_used:
        FALLBACKS.labels(model, version_name).inc()
