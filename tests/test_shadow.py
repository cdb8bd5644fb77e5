import threading

import pytest
from django.test import override_settings

from gateway.models import RequestLog
from inference.models import ModelVersion, Status
from tests.factories import ModelVersionFactory, started_experiment

# Shadow answers are written by background threads on their own connections: the test's
# rows must be committed for them to see.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_models")]

NEGATIVE_ONLY = {"NEGATIVE": ["I loved it, it was great.", "terrible"], "POSITIVE": ["a boring tedious mess", "bad"]}


@pytest.fixture
def shadowed():
    """Everyone on production; every request mirrored to a version that answers the opposite label."""
    production = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    contrary = ModelVersionFactory(version="contrary", config={"prototypes": NEGATIVE_ONLY, "temperature": 0.05})
    experiment = started_experiment(("control", production, 100), shadows=[("contrary", contrary, 100)])
    return experiment, production, contrary


def _predict(authed):
    return authed.post("/api/v1/predict", {"text": "I loved it"}, format="json")


def test_shadow_answer_is_logged_and_never_returned(authed, api_key, shadowed, background_jobs):
    experiment, production, contrary = shadowed

    response = _predict(authed)
    assert background_jobs.wait_idle(timeout_s=120)

    body = response.json()
    assert response.status_code == 200
    assert (body["label"], body["model_version"], body["variant"]) == ("POSITIVE", production.version, "control")
    live = RequestLog.objects.get(request_id=body["request_id"])
    shadow = RequestLog.objects.get(shadow_of=live.request_id)
    assert (shadow.experiment, shadow.variant, shadow.model_version) == (experiment, "contrary", contrary)
    assert shadow.status_code == 200
    assert shadow.output_label == "NEGATIVE"  # what it answered, which the caller never saw
    assert shadow.request_id != live.request_id
    assert shadow.unit == live.unit
    assert shadow.input_tokens == live.input_tokens
    # Named, but not charged to the caller's key: it never asked for this answer.
    assert shadow.key_prefix == api_key.prefix and shadow.api_key is None
    assert "contrary" not in response.content.decode() and "contrary" not in str(response.headers)


@override_settings(EXPERIMENT_BACKGROUND_WORKERS=1)
def test_caller_is_answered_while_its_shadow_copy_waits(authed, shadowed, background_jobs):
    release = threading.Event()
    assert background_jobs.submit(release.wait)  # occupies the only background thread

    response = _predict(authed)

    # Answered, and logged, while the shadow copy could not even have started.
    assert response.status_code == 200
    assert RequestLog.objects.filter(shadow_of__isnull=False).count() == 0
    assert RequestLog.objects.filter(request_id=response.json()["request_id"]).exists()
    release.set()
    assert background_jobs.wait_idle(timeout_s=120)
    assert RequestLog.objects.filter(shadow_of=response.json()["request_id"]).count() == 1


@override_settings(EXPERIMENT_BACKGROUND_WORKERS=1, EXPERIMENT_BACKGROUND_QUEUE=1)
def test_a_full_backlog_drops_the_shadow_copy_not_the_answer(authed, shadowed, background_jobs, caplog):
    release = threading.Event()
    assert background_jobs.submit(release.wait)  # the one slot is taken

    response = _predict(authed)

    assert response.status_code == 200
    assert "dropped" in caplog.text
    release.set()
    assert background_jobs.wait_idle(timeout_s=120)
    assert not RequestLog.objects.filter(shadow_of__isnull=False).exists()


def test_a_failing_shadow_is_logged_as_an_error_and_the_caller_never_notices(authed, background_jobs):
    production = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    broken = ModelVersionFactory(version="broken", backend="transformers", source="/nonexistent/model", labels=[])
    started_experiment(("control", production, 100), shadows=[("broken", broken, 100)])

    response = _predict(authed)
    assert background_jobs.wait_idle(timeout_s=120)

    assert response.status_code == 200
    shadow = RequestLog.objects.get(shadow_of=response.json()["request_id"])
    assert (shadow.status_code, shadow.error_type) == (503, "model_unavailable")


def test_a_shadow_share_mirrors_about_that_share_of_requests(authed, background_jobs):
    production = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    started_experiment(("control", production, 100), shadows=[("copy", ModelVersionFactory(version="copy"), 25)])

    responses = [_predict(authed) for _ in range(40)]
    assert background_jobs.wait_idle(timeout_s=120)

    mirrored = RequestLog.objects.filter(shadow_of__isnull=False).count()
    assert all(r.status_code == 200 for r in responses)
    assert 1 <= mirrored <= 20  # 25% of 40 is 10; the share is sampled per request
