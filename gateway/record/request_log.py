import ipaddress
import logging
import re
from decimal import Decimal

from django.conf import settings
from django.db import models

from gateway.filters import content
from gateway.limits.addresses import client_address
from gateway.metrics import families
from gateway.models import RequestLog
from gateway.record import access_log, log_writer
from gateway.record.context import RequestContext

logger = logging.getLogger(__name__)

# A path converter in a route, <uuid:task_id>, written as OpenAPI writes it: {task_id}.
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
# RequestLog.method: a method outside these is logged as OTHER (any token is a valid method).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BATCH"})
_TEXT_FIELDS = [
    field
    for field in RequestLog._meta.concrete_fields
    if field.get_internal_type() in ("CharField", "TextField") and field.name != "method"
]
_INTEGER_MAX = {
    field.attname: 32767 if field.get_internal_type() == "PositiveSmallIntegerField" else 2**31 - 1
    for field in RequestLog._meta.concrete_fields
    if field.get_internal_type() in ("PositiveIntegerField", "PositiveSmallIntegerField")
    and field.name != "status_code"
}
_DECIMAL_FIELDS = [field for field in RequestLog._meta.concrete_fields if isinstance(field, models.DecimalField)]


def is_logged_path(path: str) -> bool:
    return path.startswith(settings.GATEWAY_LOGGED_PATH_PREFIXES)


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


def record(ctx: RequestContext, request, status_code: int, latency_ms: float, *, write_row: bool = True) -> None:
    """The one place a request's outcome is known: its log row (unless refused before any
    database work), its metrics, its JSON log line."""
    if write_row:
        write(
            ctx,
            method=request.method,
            endpoint=request.path,
            client_ip=client_address(request),
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
            method=_method(request.method),
            path=_text(request.path, 200),
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
    """The (unsaved) row for one request, or one item of a batch job, that `ctx` went through,
    every field normalized to what its column holds."""
    version = ctx.model_version
    input_text = ""
    if settings.GATEWAY_LOG_REQUEST_TEXT and ctx.input_text:
        policy = ctx.filter_policy or content.policy_for(ctx, version)
        input_text = content.filter_text(ctx, policy, ctx.input_text, target="request_text")
    row = RequestLog(
        request_id=ctx.request_id,
        api_key=ctx.api_key,
        key_prefix=ctx.key_prefix,
        method=_method(method),
        endpoint=endpoint,
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
        client_ip=_ip(client_ip),
        input_text=input_text,
        output_label=ctx.output_label,
        experiment=ctx.experiment,
        variant=ctx.variant,
        unit=ctx.unit,
        shadow_of=ctx.shadow_of,
        filtered=dict(ctx.filtered),
    )
    _normalize(row)
    return row


def _normalize(row: RequestLog) -> None:
    """Make the row one the database takes whatever the request held: one refused row would
    fail the whole COPY of its batch (gateway/record/log_writer.py)."""
    for field in _TEXT_FIELDS:
        setattr(row, field.attname, _text(getattr(row, field.attname), field.max_length))
    for name, most in _INTEGER_MAX.items():
        value = getattr(row, name)
        if value is not None:
            setattr(row, name, min(max(int(value), 0), most))
    for field in _DECIMAL_FIELDS:
        value = getattr(row, field.attname)
        if value is not None:
            bound = Decimal(10) ** (field.max_digits - field.decimal_places) - Decimal(10) ** -field.decimal_places
            setattr(
                row,
                field.attname,
                min(max(Decimal(value), -bound), bound).quantize(Decimal(10) ** -field.decimal_places),
            )
    row.route = [_text(str(step), 500) for step in row.route] if isinstance(row.route, list) else []


def _method(method) -> str:
    method = str(method or "").upper()
    return method if method in METHODS else "OTHER"


def _text(value, max_length: int | None) -> str:
    """A string PostgreSQL stores: no NUL, no lone surrogate, at most `max_length` characters."""
    text = str(value or "").replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:max_length] if max_length else text


def _ip(value) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None
