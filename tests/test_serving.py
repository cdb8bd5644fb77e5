import pytest
from django.db import connection

from gateway.models import RequestLog
from tests.factories import APIKeyFactory
from tests.servers import gunicorn, http, served_database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def served(default_models):
    if connection.vendor != "postgresql":
        pytest.skip("serving tests share the test database with the server: run them on PostgreSQL (make test)")
    env = {"DATABASE_URL": served_database_url(), "WEB_WORKERS": "2", "WEB_THREADS": "8", "TORCH_THREADS": "1"}
    with gunicorn(env) as base:
        yield base


def test_gunicorn_serves_predictions_with_models_warm(served):
    key = APIKeyFactory()

    status, _, ready = http("GET", served + "/ready")
    assert status == 200
    assert set(ready["checks"]["models"].values()) == {"loaded"}

    status, headers, body = http(
        "POST", served + "/api/v1/predict", {"text": "I loved it"}, {"X-API-Key": key.plaintext}
    )
    assert status == 200
    assert body["label"] == "POSITIVE"
    row = RequestLog.objects.get(request_id=headers["X-Request-ID"])
    assert row.status_code == 200
    assert row.api_key_id == key.pk


def test_a_stopping_server_writes_the_log_rows_it_still_holds(default_models):
    if connection.vendor != "postgresql":
        pytest.skip("serving tests share the test database with the server: run them on PostgreSQL (make test)")
    key = APIKeyFactory()
    # Rows would wait a minute for their batch: only the stop can have written them.
    env = {"DATABASE_URL": served_database_url(), "WEB_WORKERS": "1", "GATEWAY_REQUEST_LOG_BUFFER_S": "60"}
    with gunicorn(env) as base:
        answers = [http("POST", base + "/predict", {"text": "fine"}, {"X-API-Key": key.plaintext}) for _ in range(3)]
        assert [status for status, _, _ in answers] == [200, 200, 200]
        assert not RequestLog.objects.filter(api_key=key).exists()

    written = RequestLog.objects.filter(api_key=key).values_list("request_id", flat=True)
    assert {str(request_id) for request_id in written} == {headers["X-Request-ID"] for _, headers, _ in answers}


def test_revoked_key_is_refused_by_the_served_gateway(served):
    key = APIKeyFactory()
    headers = {"X-API-Key": key.plaintext}
    assert http("POST", served + "/predict", {"text": "fine"}, headers)[0] == 200

    key.revoke()

    # Both worker processes answer; every one of them must refuse the key.
    statuses = {http("POST", served + "/predict", {"text": "fine"}, headers)[0] for _ in range(10)}
    assert statuses == {401}
