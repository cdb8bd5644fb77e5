import time

from django.conf import settings

from gateway import request_log
from gateway.context import RequestContext
from gateway.errors import json_error


class RequestLogMiddleware:
    """Outermost layer: gives each request an id, refuses oversized bodies, and logs the outcome."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        request.ctx = ctx = RequestContext()
        limit = _body_limit(request.path)
        if _declared_length(request) > limit:
            response = json_error(request, 413, "payload_too_large", f"The request body is over {limit} bytes.")
        else:
            response = self.get_response(request)
        response["X-Request-ID"] = str(ctx.request_id)
        if request_log.is_logged_path(request.path):
            latency_ms = (time.perf_counter() - started) * 1000
            request_log.record(ctx, request, response.status_code, latency_ms)
        return response


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
