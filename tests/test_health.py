import time

import pytest

from gateway.models import RequestLog
from inference import pool
from inference.models import LOCAL_BACKENDS, ModelVersion


def test_health_needs_no_key_and_touches_no_database(client):
    # No db fixture: any query here would raise.
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert isinstance(response.json()["model_loaded"], bool)


@pytest.mark.django_db
def test_ready_reports_each_check(client, default_models):
    pool.warm_up()

    response = client.get("/ready")

    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["cache"] == "ok"
    local = ModelVersion.objects.filter(backend__in=LOCAL_BACKENDS)
    assert checks["models"] == {str(v): "loaded" for v in local}
    assert not RequestLog.objects.exists()


@pytest.mark.django_db
def test_ready_is_503_until_models_are_loaded(client, default_models):
    version = ModelVersion.objects.get(name="embeddings")
    version.notes = "edited: needs a reload"
    version.save()

    response = client.get("/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["models"][str(version)] == "not loaded"


@pytest.mark.django_db
def test_an_edited_version_keeps_the_process_ready(client, default_models):
    pool.warm_up()
    version = ModelVersion.objects.get(name="sentiment")
    version.notes = "edited: reloads on its next request"
    version.save()

    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["models"][str(version)] == "loaded"


@pytest.mark.django_db
def test_a_version_the_process_lacks_loads_without_traffic(client, default_models):
    version = ModelVersion.objects.get(name="embeddings")
    assert client.get("/ready").status_code == 503  # this probe starts loading it

    deadline = time.monotonic() + 120
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the version never loaded"
        time.sleep(0.2)
    assert pool.is_loaded(version)
    assert not RequestLog.objects.exists()
