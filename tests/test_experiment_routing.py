import pytest

from experiments import services
from experiments.assignment import bucket_for, pick
from experiments.models import ExperimentStatus
from gateway.models import RequestLog
from inference.models import ModelVersion, Status
from tests.factories import APIKeyFactory, ModelVersionFactory, started_experiment

pytestmark = pytest.mark.usefixtures("default_models")


@pytest.fixture
def versions():
    production = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    return production, ModelVersionFactory(version="candidate")


@pytest.fixture
def experiment(versions):
    production, candidate = versions
    return started_experiment(("control", production, 50), ("treatment", candidate, 50))


def _predict(client, key, user_id=None, model=None):
    body = {"text": "I loved it"} | ({"model": model} if model else {})
    headers = {"HTTP_X_API_KEY": key.plaintext} | ({"HTTP_X_USER_ID": user_id} if user_id else {})
    return client.post("/api/v1/predict", body, format="json", **headers)


def _expected(experiment, unit):
    return pick([("control", 50), ("treatment", 50)], bucket_for(experiment.salt, unit))


def test_a_user_is_answered_by_their_variant_every_time(client, api_key, experiment, versions):
    responses = [_predict(client, api_key, user_id="user-42") for _ in range(5)]

    variant = _expected(experiment, "user:user-42")
    version = dict(zip(["control", "treatment"], versions, strict=True))[variant]
    for response in responses:
        assert response.status_code == 200
        assert response.json()["variant"] == variant
        assert response["X-Experiment-Variant"] == variant
        assert response.json()["model_version"] == version.version
    rows = RequestLog.objects.filter(experiment=experiment)
    assert rows.count() == 5
    assert {(row.variant, row.model_version_id) for row in rows} == {(variant, version.pk)}
    unit = rows.first().unit
    assert unit and "user-42" not in unit  # a digest, not the user id


def test_without_a_user_id_the_api_key_is_the_unit(client, experiment):
    keys = [APIKeyFactory() for _ in range(12)]

    seen = {key.prefix: _predict(client, key).json()["variant"] for key in keys}

    assert seen == {key.prefix: _expected(experiment, f"key:{key.prefix}") for key in keys}
    assert set(seen.values()) == {"control", "treatment"}


def test_users_are_split_over_both_variants(client, api_key, experiment):
    variants = {_predict(client, api_key, user_id=f"u{i}").json()["variant"] for i in range(20)}

    assert variants == {"control", "treatment"}


def test_a_pinned_version_bypasses_the_experiment(client, api_key, experiment):
    response = _predict(client, api_key, user_id="user-42", model="sentiment:candidate")

    assert response.json()["variant"] is None
    assert "X-Experiment-Variant" not in response
    assert RequestLog.objects.get().experiment is None


def test_a_paused_experiment_sends_everyone_to_production(client, api_key, experiment, versions):
    services.experiment_pause(experiment, actor="tests")

    response = _predict(client, api_key, user_id="user-42")

    assert response.json()["variant"] is None
    assert response.json()["model_version"] == versions[0].version


def test_units_outside_the_coverage_get_production_and_no_variant(client, api_key, versions):
    production, candidate = versions
    started_experiment(("control", production, 50), ("treatment", candidate, 50), coverage=0)

    response = _predict(client, api_key, user_id="user-42")

    assert response.json()["variant"] is None
    assert RequestLog.objects.get().experiment is None


def test_embeddings_requests_are_not_touched_by_a_classification_experiment(client, api_key, experiment):
    response = client.post("/api/v1/embeddings", {"input": "hi"}, format="json", HTTP_X_API_KEY=api_key.plaintext)

    assert response.json()["variant"] is None


def test_only_one_experiment_per_model_runs_at_once(experiment, versions):
    production, candidate = versions

    with pytest.raises(services.ExperimentError, match="Another experiment on sentiment is running"):
        started_experiment(("control", production, 50), ("treatment", candidate, 50))


@pytest.mark.parametrize(
    ("weights", "message"),
    [((50, 40), "sum to 100; they sum to 90"), ((100,), "at least two variants")],
    ids=["sum-90", "one-variant"],
)
def test_an_experiment_with_bad_variants_does_not_start(versions, weights, message):
    variants = [(f"v{i}", version, weight) for i, (version, weight) in enumerate(zip(versions, weights, strict=False))]

    with pytest.raises(services.ExperimentError, match=message):
        started_experiment(*variants)


def test_a_variant_must_be_a_version_of_the_experiments_model(versions):
    other = ModelVersionFactory(name="toxicity", version="1")

    with pytest.raises(services.ExperimentError, match="is not a version of sentiment"):
        started_experiment(("control", versions[0], 50), ("treatment", other, 50))


def test_a_stopped_experiment_cannot_start_again(experiment):
    services.experiment_stop(experiment, actor="tests")

    with pytest.raises(services.ExperimentError, match="stopped"):
        services.experiment_start(experiment, actor="tests")
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED
