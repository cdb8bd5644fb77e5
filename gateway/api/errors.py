"""One JSON error shape for the whole API: {"error": {"type", "message", "request_id"}}."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from gateway import db

logger = logging.getLogger(__name__)

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


class GatewayError(Exception):
    """A request the gateway refuses or cannot answer. Raised by the domain; `exception_handler`
    below is the one place that turns it into an HTTP status and the error shape."""

    error_type = "server_error"
    message = "The gateway failed to answer; the error was logged."

    def __init__(self, message: str | None = None, *, fields: dict | None = None, retry_after: int | None = None):
        self.message = message or self.message
        self.fields = fields
        self.retry_after = retry_after
        super().__init__(self.message)


class InvalidInput(GatewayError):
    error_type = "invalid_request"
    message = "The request is invalid; see fields."


class UpstreamRefused(InvalidInput):
    """The provider answered 400/422. Its body names the provider and may echo other callers'
    data or its own configuration: it goes to the log, never to the caller."""

    error_type = "upstream_refused"
    message = "The model's provider refused this request as invalid; its reason is logged under this request id."


class PayloadTooLarge(GatewayError):
    error_type = "payload_too_large"
    message = "The request body is too large."


class ModelNotAllowed(GatewayError):
    error_type = "permission_denied"

    def __init__(self, name: str):
        super().__init__(f"This API key may not use the model '{name}'.")


class DraftNotAllowed(GatewayError):
    error_type = "permission_denied"

    def __init__(self, version):
        super().__init__(
            f"This API key may pin only production and staging versions; {version} is {version.status}. "
            "An operator can allow drafts for the key."
        )


class ModelNotFound(GatewayError):
    error_type = "model_not_found"

    def __init__(self, task: str, model_ref: str):
        super().__init__(f"No {task} model '{model_ref}' is being served.")


class ModelUnavailable(GatewayError):
    error_type = "model_unavailable"
    message = "The model is overloaded; retry shortly."


class ModelFailed(GatewayError):
    error_type = "model_error"
    message = "The model failed on this input."


class UpstreamFailed(GatewayError):
    error_type = "upstream_error"
    message = "Every upstream that can serve this model failed."


class UpstreamUnavailable(GatewayError):
    error_type = "upstream_unavailable"
    message = "Every upstream that can serve this model is failing; retry shortly."


class RateLimited(GatewayError):
    error_type = "rate_limited"


class BudgetExceeded(GatewayError):
    error_type = "budget_exceeded"
    message = "The budget for this period is spent."


class LimitsUnavailable(GatewayError):
    """Redis is unreachable and the operator chose to fail closed."""

    error_type = "limits_unavailable"
    message = "Usage limits cannot be checked right now; retry shortly."


class QueueUnavailable(GatewayError):
    error_type = "queue_unavailable"
    message = "The job queue is unreachable; the job was not accepted. Retry shortly."


class DatabaseUnavailable(GatewayError):
    """PostgreSQL is out of reach and this request needs it (what the snapshot holds is served)."""

    error_type = "database_unavailable"
    message = "The gateway's database is unreachable and this request needs it; retry shortly."


class RecordUnavailable(GatewayError):
    """The request log's spool is full: a billable answer could not be recorded."""

    error_type = "record_unavailable"
    message = "Requests cannot be recorded right now, so none is served; retry shortly."


class JobFinished(GatewayError):
    error_type = "job_finished"


_STATUS = (
    (InvalidInput, 400),
    (BudgetExceeded, 402),
    (ModelNotAllowed, 403),
    (DraftNotAllowed, 403),
    (ModelNotFound, 404),
    (JobFinished, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (ModelFailed, 500),
    (UpstreamFailed, 502),
    (ModelUnavailable, 503),
    (UpstreamUnavailable, 503),
    (LimitsUnavailable, 503),
    (QueueUnavailable, 503),
    (DatabaseUnavailable, 503),
    (RecordUnavailable, 503),
)


def status_of(exc: GatewayError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def message_of(exc: GatewayError) -> str:
    """One line for places without a response (a batch item's error)."""
    if not exc.fields:
        return exc.message
    return "; ".join(f"{field}: {' '.join(map(str, errors))}" for field, errors in exc.fields.items())


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
    for cls, error_type in _TYPES:
        if isinstance(exc, cls):
            return error_type
    return "service_unavailable" if exc.status_code == 503 else "server_error"


def exception_handler(exc, context):
    """Domain errors and DRF's own (parsing, authentication, scopes), in the gateway's shape."""
    request = context["request"]
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, OperationalError | InterfaceError):
        # The database is out of reach (refused, cut, or no pooled connection within
        # DB_POOL_TIMEOUT): a 503 to retry, never a 500 (docs/reliability.md).
        logger.warning("Database unavailable: %s", exc)
        db.set_reachable(False)
        exc = DatabaseUnavailable(retry_after=settings.GATEWAY_UNAVAILABLE_RETRY_AFTER_S)
    if isinstance(exc, GatewayError):
        status = status_of(exc)
        response = Response(error_body(exc.error_type, exc.message, request, exc.fields), status=status)
        retry_after = exc.retry_after
        if retry_after is None and status == 503:
            # Every 503 says when to come back (docs/reliability.md); the step that knows better sets its own.
            retry_after = settings.GATEWAY_UNAVAILABLE_RETRY_AFTER_S
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response
    # Imported here: loading rest_framework.views loads the throttle classes, which raise
    # this module's errors (gateway/limits/rate_limits.py), so a module-level import is circular.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 answers (in the same shape)
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
