import logging
import re

from django.conf import settings

from gateway.filters import content
from gateway.metrics import families
from gateway.models import RequestLog
from gateway.record import access_log, log_writer
from gateway.record.context import RequestContext

logger = logging.getLogger(__name__)

# A path converter in a route, <uuid:task_id>, written as OpenAPI writes it: {task_id}.
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def is_logged_path(path: str) -> bool:
    return path.startswith(settings.GATEWAY_LOGGED_PATH_PREFIXES)


def client_ip(request) -> str | None:
    if settings.GATEWAY_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR") or None


def route_name(request) -> str:
    """The URL pattern's name: a bounded label, unlike the raw path of an unknown URL."""
    match = getattr(request, "resolver_match", None)
    return (match.url_name or match.view_name) if match is not None else "unmatched"


def route_path(request) -> str:
    """The matched route's path pattern, as the original service's metrics name endpoints:
    /batch_result/{task_id} for every task id."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    return "/" + _CONVERTER.sub(r"{\1}", match.route)


def record(ctx: RequestContext, request, status_code: int, latency_ms: float) -> None:
    """The one place a request's outcome is known: its log row, its metrics, its JSON log line."""
    write(
        ctx,
        method=request.method,
        endpoint=request.path,
        client_ip=client_ip(request),
        status_code=status_code,
        latency_ms=latency_ms,
    )
    endpoint = route_name(request)
    try:
        families.observe_request(
            ctx, endpoint=endpoint, route=route_path(request), status_code=status_code, latency_ms=latency_ms
        )
        access_log.log_request(
            ctx,
            method=request.method,
            path=request.path[:200],
            endpoint=endpoint,
            status_code=status_code,
            latency_ms=latency_ms,
        )
    except Exception:
        logger.exception("Could not record the metrics of %s", ctx.request_id)


def write(ctx: RequestContext, **fields) -> None:
    """Hand one row to the log writer: a request's, or a shadow answer's (which has no request
    of its own). A failed write is logged, never turned into a failed answer."""
    if not settings.GATEWAY_REQUEST_LOG_ENABLED:
        return
    try:
        log_writer.writer.submit(log_row(ctx, **fields))
    except Exception:
        logger.exception("Could not write the request log row for %s", ctx.request_id)


def log_row(
    ctx: RequestContext, *, method: str, endpoint: str, status_code: int, latency_ms: float, client_ip=None
) -> RequestLog:
    """The (unsaved) row for one request, or one item of a batch job, that `ctx` went through."""
    version = ctx.model_version
    input_text = ""
    if settings.GATEWAY_LOG_REQUEST_TEXT and ctx.input_text:
        policy = ctx.filter_policy or content.policy_for(ctx, version)
        input_text = content.filter_text(ctx, policy, ctx.input_text, target="request_text")
    return RequestLog(
        request_id=ctx.request_id,
        api_key=ctx.api_key,
        key_prefix=ctx.key_prefix,
        method=method,
        endpoint=endpoint[:200],
        model_name=ctx.model_name,
        requested_model=ctx.requested_model[:100],
        model_version=version,
        version=version.version if version else "",
        status_code=status_code,
        error_type=ctx.error_type,
        latency_ms=latency_ms,
        input_tokens=ctx.input_tokens,
        output_tokens=ctx.output_tokens,
        cost_usd=ctx.cost_usd,
        cache_hit=ctx.cache_hit,
        served_stale=ctx.served_stale,
        input_price_per_1k=ctx.input_price_per_1k,
        output_price_per_1k=ctx.output_price_per_1k,
        price_missing=ctx.price_missing,
        provider=ctx.provider,
        attempts=ctx.attempts,
        route=ctx.route,
        fallback_used=ctx.fallback_used,
        routing_rule=ctx.routing_rule,
        ttft_ms=ctx.ttft_ms,
        truncated=ctx.truncated,
        usage_estimated=ctx.usage_estimated,
        cost_saved_usd=ctx.cost_saved_usd,
        team_id=ctx.api_key.team_id if ctx.api_key else None,
        client_ip=client_ip,
        input_text=input_text,
        output_label=ctx.output_label[:100],
        experiment=ctx.experiment,
        variant=ctx.variant,
        unit=ctx.unit,
        shadow_of=ctx.shadow_of,
        filtered=dict(ctx.filtered),
    )
