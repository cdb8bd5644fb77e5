"""One JSON error shape for the whole API: {"error": {"type", "message", "request_id"}}."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status

_TYPES = [
    (exceptions.ValidationError, "invalid_request"),
    (exceptions.ParseError, "invalid_request"),
    (exceptions.NotAuthenticated, "authentication_error"),
    (exceptions.AuthenticationFailed, "authentication_error"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "rate_limited"),
]


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    error_type = "payload_too_large"


class ModelNotFound(exceptions.NotFound):
    error_type = "model_not_found"


class ModelUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The model is overloaded; retry shortly."
    error_type = "model_unavailable"


class ModelFailed(exceptions.APIException):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_detail = "The model failed on this input."
    error_type = "model_error"


class UpstreamFailed(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "Every upstream that can serve this model failed."
    error_type = "upstream_error"


class UpstreamUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Every upstream that can serve this model is failing; retry shortly."
    error_type = "upstream_unavailable"


class RateLimited(exceptions.Throttled):
    """429; DRF's handler turns `wait` into Retry-After."""

    error_type = "rate_limited"


class BudgetExceeded(exceptions.APIException):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_detail = "The budget for this period is spent."
    error_type = "budget_exceeded"


class LimitsUnavailable(exceptions.APIException):
    """Redis is unreachable and the operator chose to fail closed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Usage limits cannot be checked right now; retry shortly."
    error_type = "limits_unavailable"


def error_body(error_type: str, message: str, request, fields=None) -> dict:
    """The error envelope; `code` and `param` make it OpenAI's shape as well, for its SDKs."""
    ctx = getattr(request, "ctx", None)
    if ctx is not None:
        ctx.error_type = error_type
    error = {
        "type": error_type,
        "code": error_type,
        "message": message,
        "param": next(iter(fields), None) if fields else None,
        "request_id": str(ctx.request_id) if ctx else None,
    }
    if fields:
        error["fields"] = fields
    return {"error": error}


def json_error(request, status_code: int, error_type: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(error_type, message, request), status=status_code)


def error_type_of(exc: exceptions.APIException) -> str:
    if hasattr(exc, "error_type"):
        return exc.error_type
    for cls, error_type in _TYPES:
        if isinstance(exc, cls):
            return error_type
    return "service_unavailable" if exc.status_code == 503 else "server_error"


def exception_handler(exc, context):
    """DRF's handler, with every error rendered in the gateway's shape."""
    # Imported here: loading rest_framework.views loads the throttle classes, which raise
    # this module's errors (gateway/limits/rate_limits.py), so a module-level import is circular.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 answers (in the same shape)
    request = context["request"]
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid_request", "The request is invalid; see fields.", request, fields)
    else:
        response.data = error_body(error_type_of(exc), str(exc.detail), request)
    return response


# Django-level handlers, for requests that never reach a DRF view.
def not_found(request, exception=None):
    return json_error(request, 404, "not_found", f"No endpoint at {request.path}.")


def server_error(request):
    return json_error(request, 500, "server_error", "The gateway failed to answer; the error was logged.")


def bad_request(request, exception=None):
    return json_error(request, 400, "invalid_request", "Bad request.")


def permission_denied(request, exception=None):
    return json_error(request, 403, "permission_denied", "Permission denied.")
