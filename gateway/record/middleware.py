import time

from django.conf import settings

from gateway.api.errors import RecordUnavailable, json_error
from gateway.caching import snapshot
from gateway.limits import addresses
from gateway.record import log_writer, request_log
from gateway.record.context import RequestContext


class RequestLogMiddleware:
    """Outermost layer: gives each request an id, applies the per-address limits and refuses
    oversized bodies before anything else runs, logs the outcome, and settles a reservation
    left open (a stream never read) once the response is gone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with snapshot.request_scope():
            return self._handle(request)

    def _handle(self, request):
        request.ctx = ctx = RequestContext(endpoint=request.path)
        logged = request_log.is_logged_path(request.path)
        address = addresses.client_address(request)
        if logged and (refusal := addresses.admit(address)) is not None:
            # Refused before any database work, its log row included: a flood from one address
            # must not turn into a flood of rows. Metrics and the access log still count it.
            addresses.hold(refusal)
            response = json_error(request, 429, "rate_limited", refusal.message)
            response["Retry-After"] = str(refusal.retry_after)
            response["X-Request-ID"] = str(ctx.request_id)
            request_log.record(ctx, request, 429, _elapsed_ms(ctx), write_row=False)
            return response
        if logged and log_writer.writer.refuses_requests():
            # The spool is full: an answer now could not be recorded (docs/reliability.md).
            response = json_error(request, 503, RecordUnavailable.error_type, RecordUnavailable.message)
            response["Retry-After"] = str(settings.GATEWAY_UNAVAILABLE_RETRY_AFTER_S)
            response["X-Request-ID"] = str(ctx.request_id)
            request_log.record(ctx, request, 503, _elapsed_ms(ctx), write_row=False)
            return response
        try:
            response = self._respond(request, ctx)
        except BaseException:
            _settle_left_open(ctx)
            raise
        if logged and response.status_code == 401:
            addresses.count_failure(address)
        if response.streaming:
            # A stream's tokens, cost and outcome are known only once it has been sent.
            response.streaming_content = _finish_after(response.streaming_content, ctx, request, response, logged)
        else:
            _finish(ctx, request, response, logged)
        return response

    def _respond(self, request, ctx):
        limit = _body_limit(request.path)
        if _declared_length(request) > limit:
            response = json_error(request, 413, "payload_too_large", f"The request body is over {limit} bytes.")
        else:
            response = self.get_response(request)
        response["X-Request-ID"] = str(ctx.request_id)
        if ctx.variant:
            response["X-Experiment-Variant"] = ctx.variant
        if ctx.cache_hit:
            response["X-Cache"] = "hit"  # OpenAI-shaped bodies have no field to say so
        for name, value in ctx.response_headers.items():
            response[name] = value
        return response


def _finish(ctx, request, response, logged: bool) -> None:
    _settle_left_open(ctx)
    if logged:
        request_log.record(ctx, request, response.status_code, _elapsed_ms(ctx))


def _finish_after(content, ctx, request, response, logged: bool):
    try:
        yield from content
    finally:
        _finish(ctx, request, response, logged)


def _settle_left_open(ctx) -> None:
    if ctx.reservation is not None:
        ctx.reservation.settle()


def _elapsed_ms(ctx) -> float:
    return (time.perf_counter() - ctx.started) * 1000


def _body_limit(path: str) -> int:
    # Batch submissions carry thousands of inputs; every other endpoint keeps the small limit.
    if path in settings.GATEWAY_BATCH_SUBMIT_PATHS:
        return settings.GATEWAY_BATCH_MAX_BODY_BYTES
    return settings.GATEWAY_MAX_BODY_BYTES


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
