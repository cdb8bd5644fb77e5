"""Redis unreachable (its port refused): the gateway keeps serving, by the documented policy."""

import pytest
from django.conf import settings
from django.test import override_settings

from gateway.models import RequestLog
from inference import pool
from tests.factories import APIKeyFactory, TeamFactory
from tests.servers import free_port

pytestmark = pytest.mark.usefixtures("default_models")

PREDICT = "/api/v1/predict"


@pytest.fixture
def redis_refused():
    """Every cache (counters, responses) pointed at a port nobody listens on."""
    refused = f"redis://127.0.0.1:{free_port()}/0"
    caches = {alias: {**config, "LOCATION": refused} for alias, config in settings.CACHES.items()}
    if caches["default"]["BACKEND"] != "django_redis.cache.RedisCache":
        pytest.skip("needs REDIS_URL (make test)")
    with override_settings(CACHES=caches):
        yield


def _predict(client, key, text="I loved it"):
    return client.post(PREDICT, {"text": text}, format="json", HTTP_X_API_KEY=key.plaintext)


def test_limited_key_is_served_unchecked_by_default(client, redis_refused):
    key = APIKeyFactory(requests_per_minute=1, tokens_per_minute=10, budget_usd=0, team=TeamFactory(budget_usd=0))

    statuses = [_predict(client, key).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]


def test_cache_is_skipped(client, api_key, redis_refused):
    answers = [_predict(client, api_key).json() for _ in range(2)]

    assert [a["cached"] for a in answers] == [False, False]
    assert answers[0]["label"] == "POSITIVE"
    assert RequestLog.objects.filter(status_code=200, cache_hit=False).count() == 2


# A key without limits is served: so that there is one, the default limits are lifted here.
@override_settings(
    GATEWAY_RATE_LIMITS_FAIL_OPEN=False,
    GATEWAY_DEFAULT_LIMITS={"requests_per_minute": 0, "tokens_per_minute": 0, "max_in_flight": 0},
)
def test_rate_limits_can_fail_closed_with_503(client, redis_refused):
    limited, free = APIKeyFactory(requests_per_minute=100), APIKeyFactory()

    refused = _predict(client, limited)

    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "limits_unavailable"
    assert RequestLog.objects.get(request_id=refused["X-Request-ID"]).error_type == "limits_unavailable"
    assert _predict(client, free).status_code == 200


@override_settings(GATEWAY_BUDGETS_FAIL_OPEN=False)
def test_budgets_can_fail_closed_with_503(client, redis_refused):
    budgeted = APIKeyFactory(team=TeamFactory(budget_usd=10))

    refused = _predict(client, budgeted)

    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "limits_unavailable"


def test_ready_stays_ready_and_reports_the_cache(client, redis_refused):
    pool.warm_up()

    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["cache"].startswith("error")


def test_admin_usage_columns_survive(client, redis_refused, admin_client):
    APIKeyFactory(requests_per_minute=5, budget_usd=1)

    page = admin_client.get("/admin/gateway/apikey/")

    assert page.status_code == 200
    assert "? / 5" in page.content.decode()
