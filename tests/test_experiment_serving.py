import pytest
from django.db import connection

from experiments.assignment import bucket_for, pick
from gateway.models import RequestLog
from inference.models import ModelVersion, Status
from tests.factories import APIKeyFactory, ModelVersionFactory, started_experiment
from tests.servers import gunicorn, http, served_database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _server_env(hash_seed: str) -> dict:
    # One worker each and different hash seeds: two processes that share nothing but the database.
    return {
        "DATABASE_URL": served_database_url(),
        "WEB_WORKERS": "1",
        "WEB_THREADS": "4",
        "TORCH_THREADS": "1",
        "PYTHONHASHSEED": hash_seed,
    }


def test_each_unit_gets_the_same_variant_from_two_server_processes(default_models):
    if connection.vendor != "postgresql":
        pytest.skip("serving tests share the test database with the servers: run them on PostgreSQL (make test)")
    production = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    experiment = started_experiment(("control", production, 50), ("treatment", ModelVersionFactory(version="b"), 50))
    key = APIKeyFactory()
    users = [f"user-{i}" for i in range(16)]

    answers = []
    with gunicorn(_server_env("1")) as first, gunicorn(_server_env("2")) as second:
        for base in (first, second, first):
            variants = {}
            for user in users:
                status, headers, body = http(
                    "POST",
                    base + "/api/v1/predict",
                    {"text": "I loved it"},
                    {"X-API-Key": key.plaintext, "X-User-ID": user},
                )
                assert status == 200
                assert headers["X-Experiment-Variant"] == body["variant"]
                variants[user] = body["variant"]
            answers.append(variants)

    expected = {
        user: pick([("control", 50), ("treatment", 50)], bucket_for(experiment.salt, f"user:{user}")) for user in users
    }
    assert answers == [expected, expected, expected]
    assert set(expected.values()) == {"control", "treatment"}
    assert RequestLog.objects.filter(experiment=experiment).count() == 3 * len(users)
