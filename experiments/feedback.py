"""Outcomes reported by callers: POST /api/v1/feedback."""

from rest_framework.exceptions import NotFound, ValidationError

from experiments.models import Feedback
from gateway.models import RequestLog


def feedback_record(*, key, request_id, label: str, score: float | None) -> tuple[Feedback, bool]:
    """Store (or replace) the outcome of one of the key's answered requests; (feedback, created)."""
    # Only the key that made the request may rate it; any other key learns nothing, not even
    # that the request exists.
    request = (
        RequestLog.objects.filter(request_id=request_id, api_key=key, shadow_of__isnull=True)
        .select_related("model_version")
        .first()
    )
    if request is None:
        raise NotFound(f"This key made no request {request_id}.")
    if not 200 <= request.status_code < 300:
        raise ValidationError({"request_id": [f"Request {request_id} was not answered ({request.status_code})."]})
    labels = request.model_version.labels if request.model_version else []
    if label and labels and label not in labels:
        raise ValidationError({"label": [f"'{label}' is not a label of {request.model_version}: {labels}."]})
    return Feedback.objects.update_or_create(
        request=request, defaults={"request_uuid": request.request_id, "label": label, "score": score}
    )
