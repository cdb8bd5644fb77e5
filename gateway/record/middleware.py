import time

from django.conf import settings

from gateway.api.errors import json_error
from gateway.caching import snapshot
from gateway.record import request_log
from gateway.record.context import RequestContext


class RequestLogMiddleware:
    """Outermost layer: gives each request an id, refuses oversized bodies, and logs the outcome."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with snapshot.request_scope():
            return self._handle(request)

    def _handle(self, request):
        request.ctx = ctx = RequestContext(endpoint=request.path)
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
        if request_log.is_logged_path(request.path):
            if response.streaming:
                # A stream's tokens, cost and outcome are known only once it has been sent.
                response.streaming_content = _record_after(response.streaming_content, ctx, request, response)
            else:
                _record(ctx, request, response)
        return response


def _record(ctx, request, response) -> None:
    request_log.record(ctx, request, response.status_code, (time.perf_counter() - ctx.started) * 1000)


def _record_after(content, ctx, request, response):
    try:
        yield from content
    finally:
        _record(ctx, request, response)


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
