import pytest

from experiments import guardrails
from experiments.models import ExperimentStatus
from gateway.models import AuditAction, AuditEvent
from inference.models import ModelVersion, Status
from tests.factories import ModelVersionFactory, started_experiment

# Guardrail checks run on background threads with their own connections: commit the rows.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_models")]


@pytest.fixture
def production():
    return ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)


@pytest.fixture
def broken():
    """A version whose weights are missing: every request it gets fails with 503."""
    return ModelVersionFactory(version="broken", backend="transformers", source="/nonexistent/model", labels=[])


def _traffic(authed, users):
    return [authed.post("/api/v1/predict", {"text": "fine"}, format="json", HTTP_X_USER_ID=f"user-{i}") for i in users]


def test_guardrail_pauses_a_failing_variant_and_records_why(authed, production, broken, background_jobs):
    experiment = started_experiment(
        ("control", production, 50), ("broken", broken, 50), guardrail_enabled=True, guardrail_min_requests=20
    )
    responses = _traffic(authed, range(80))
    assert {r.json().get("variant") for r in responses if r.status_code == 200} == {"control"}
    assert {r.status_code for r in responses if r.status_code != 200} == {503}

    reason = guardrails.check(experiment.pk)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.PAUSED
    assert reason == experiment.paused_reason
    assert "Variant broken failed" in reason and "p = " in reason
    events = AuditEvent.objects.filter(experiment=experiment, action=AuditAction.GUARDRAIL)
    assert {(e.actor, e.model_version_id) for e in events} == {("guardrail", production.pk), ("guardrail", broken.pk)}
    # Everyone is back on production.
    after = _traffic(authed, range(80, 90))
    assert {(r.status_code, r.json()["variant"]) for r in after} == {(200, None)}


def test_requests_trigger_the_check_off_the_request_path(authed, production, broken, background_jobs, settings):
    settings.EXPERIMENT_GUARDRAIL_INTERVAL_S = 0
    experiment = started_experiment(
        ("control", production, 50), ("broken", broken, 50), guardrail_enabled=True, guardrail_min_requests=20
    )

    _traffic(authed, range(80))
    assert background_jobs.wait_idle(timeout_s=120)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.PAUSED
    # Several checks may have found it failing; one paused it and audited it once per version.
    assert AuditEvent.objects.filter(experiment=experiment, action=AuditAction.GUARDRAIL).count() == 2


def test_a_healthy_variant_keeps_running(authed, production, background_jobs):
    experiment = started_experiment(
        ("control", production, 50),
        ("twin", ModelVersionFactory(version="twin"), 50),
        guardrail_enabled=True,
        guardrail_min_requests=20,
    )
    _traffic(authed, range(60))

    assert guardrails.check(experiment.pk) is None
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_the_guardrail_waits_for_enough_requests(authed, production, broken, background_jobs):
    experiment = started_experiment(
        ("control", production, 50), ("broken", broken, 50), guardrail_enabled=True, guardrail_min_requests=500
    )
    _traffic(authed, range(40))

    assert guardrails.check(experiment.pk) is None
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_a_disabled_guardrail_never_pauses(authed, production, broken, background_jobs):
    experiment = started_experiment(
        ("control", production, 50), ("broken", broken, 50), guardrail_enabled=False, guardrail_min_requests=20
    )
    _traffic(authed, range(80))

    assert guardrails.check(experiment.pk) is None
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
