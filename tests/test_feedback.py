import uuid

import pytest
from rest_framework.test import APIClient

from experiments.models import Feedback
from tests.factories import APIKeyFactory

pytestmark = pytest.mark.usefixtures("default_models")


def _answered(authed, text="I loved it"):
    return authed.post("/api/v1/predict", {"text": text}, format="json").json()["request_id"]


def _feedback(key, body):
    # A client of its own: `authed` shares the `client` fixture and would send its own key.
    return APIClient().post("/api/v1/feedback", body, format="json", HTTP_X_API_KEY=key.plaintext)


def test_true_label_is_recorded_with_whether_the_answer_agreed(authed, api_key):
    request_id = _answered(authed)  # answered POSITIVE

    right = _feedback(api_key, {"request_id": request_id, "label": "POSITIVE"})

    assert right.status_code == 201
    assert right.json() == {"request_id": request_id, "label": "POSITIVE", "score": None, "correct": True}
    feedback = Feedback.objects.get()
    assert str(feedback.request.request_id) == request_id and feedback.label == "POSITIVE"


def test_feedback_again_replaces_the_first(authed, api_key):
    request_id = _answered(authed)
    _feedback(api_key, {"request_id": request_id, "label": "POSITIVE"})

    again = _feedback(api_key, {"request_id": request_id, "label": "NEGATIVE", "score": 0.0})

    assert again.status_code == 200
    assert again.json()["correct"] is False
    assert Feedback.objects.get().label == "NEGATIVE"


def test_a_score_alone_is_accepted(authed, api_key):
    response = _feedback(api_key, {"request_id": _answered(authed), "score": 0.8})

    assert response.status_code == 201
    assert response.json()["score"] == 0.8 and response.json()["correct"] is None


def test_another_keys_request_is_not_found(authed):
    request_id = _answered(authed)
    stranger = APIKeyFactory()

    response = _feedback(stranger, {"request_id": request_id, "label": "POSITIVE"})

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert not Feedback.objects.exists()


def test_an_unknown_request_is_not_found(api_key):
    response = _feedback(api_key, {"request_id": str(uuid.uuid4()), "label": "POSITIVE"})

    assert response.status_code == 404


def test_a_request_that_was_not_answered_takes_no_feedback(authed, api_key):
    failed = authed.post("/api/v1/predict", {"text": ""}, format="json")

    response = _feedback(api_key, {"request_id": failed["X-Request-ID"], "label": "POSITIVE"})

    assert response.status_code == 400
    assert "not answered" in response.json()["error"]["fields"]["request_id"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "POSITIVE"}, "request_id"),
        ({"request_id": "not-a-uuid", "label": "POSITIVE"}, "request_id"),
        ({"request_id": "{id}"}, "non_field_errors"),
        ({"request_id": "{id}", "score": 1.5}, "score"),
        ({"request_id": "{id}", "label": 1}, "label"),
        ({"request_id": "{id}", "label": "MAYBE"}, "label"),
    ],
    ids=["no-request-id", "bad-uuid", "neither-label-nor-score", "score-over-1", "label-number", "unknown-label"],
)
def test_bad_feedback_is_a_400_naming_the_field(authed, api_key, body, field):
    request_id = _answered(authed)
    body = {k: v.replace("{id}", request_id) if isinstance(v, str) else v for k, v in body.items()}

    response = _feedback(api_key, body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_feedback_needs_a_key(authed):
    request_id = _answered(authed)

    response = APIClient().post("/api/v1/feedback", {"request_id": request_id, "label": "POSITIVE"}, format="json")

    assert response.status_code == 401
