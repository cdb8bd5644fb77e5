import logging

from django.conf import settings

from gateway.context import RequestContext
from gateway.models import RequestLog

logger = logging.getLogger(__name__)


def is_logged_path(path: str) -> bool:
    return path.startswith(settings.GATEWAY_LOGGED_PATH_PREFIXES)


def client_ip(request) -> str | None:
    if settings.GATEWAY_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR") or None


def record(ctx: RequestContext, request, status_code: int, latency_ms: float) -> None:
    """Write the request's row; a failed write is logged, never turned into a failed answer."""
    try:
        row = log_row(
            ctx,
            method=request.method,
            endpoint=request.path,
            status_code=status_code,
            latency_ms=latency_ms,
            client_ip=client_ip(request),
        )
        row.save(force_insert=True)
    except Exception:
        logger.exception("Could not write the request log row for %s", ctx.request_id)


def log_row(
    ctx: RequestContext, *, method: str, endpoint: str, status_code: int, latency_ms: float, client_ip=None
) -> RequestLog:
    """The (unsaved) row for one request, or one item of a batch job, that `ctx` went through."""
    version = ctx.model_version
    return RequestLog(
        request_id=ctx.request_id,
        api_key=ctx.api_key,
        key_prefix=ctx.key_prefix,
        method=method,
        endpoint=endpoint[:200],
        model_name=ctx.model_name,
        model_version=version,
        version=version.version if version else "",
        status_code=status_code,
        error_type=ctx.error_type,
        latency_ms=latency_ms,
        input_tokens=ctx.input_tokens,
        output_tokens=ctx.output_tokens,
        cost_usd=ctx.cost_usd,
        cache_hit=ctx.cache_hit,
        client_ip=client_ip,
        input_text=ctx.input_text if settings.GATEWAY_LOG_REQUEST_TEXT else "",
    )
