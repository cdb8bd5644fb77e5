import pytest
from django.test import override_settings

from gateway.models import RequestLog
from tests.factories import APIKeyFactory, TeamFactory

pytestmark = pytest.mark.usefixtures("default_models")

PREDICT = "/api/v1/predict"


def _predict(client, key, text="I loved it", **extra):
    return client.post(PREDICT, {"text": text}, format="json", HTTP_X_API_KEY=key.plaintext, **extra)


def test_key_past_its_requests_per_minute_gets_429_with_rate_headers(client, roomy_window):
    key = APIKeyFactory(requests_per_minute=3)
    roomy_window(key, 5)

    answers = [_predict(client, key) for _ in range(4)]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert {r["X-RateLimit-Limit"] for r in answers} == {"3"}
    refused = answers[-1]
    assert refused.json()["error"]["type"] == "rate_limited"
    assert "3 requests per minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["Retry-After"] == refused["X-RateLimit-Reset"]


def test_429_is_logged(client, roomy_window):
    key = APIKeyFactory(requests_per_minute=1)
    roomy_window(key, 5)
    _predict(client, key)

    refused = _predict(client, key)

    row = RequestLog.objects.get(request_id=refused["X-Request-ID"])
    assert row.status_code == 429
    assert row.error_type == "rate_limited"
    assert row.api_key == key


def test_key_without_a_limit_takes_its_teams(client, roomy_window):
    key = APIKeyFactory(team=TeamFactory(requests_per_minute=2))
    roomy_window(key, 5)

    statuses = [_predict(client, key).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_keys_own_limit_wins_over_its_teams(client, roomy_window):
    key = APIKeyFactory(requests_per_minute=3, team=TeamFactory(requests_per_minute=1))
    roomy_window(key, 5)

    statuses = [_predict(client, key).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


@override_settings(GATEWAY_DEFAULT_LIMITS={"requests_per_minute": 1, "tokens_per_minute": 0, "max_in_flight": 0})
def test_global_default_applies_to_keys_and_teams_without_a_limit(client, roomy_window):
    key = APIKeyFactory(team=TeamFactory())
    roomy_window(key, 5)

    statuses = [_predict(client, key).status_code for _ in range(2)]

    assert statuses == [200, 429]


def test_each_key_has_its_own_count(client, roomy_window):
    first, second = APIKeyFactory(requests_per_minute=1), APIKeyFactory(requests_per_minute=1)
    roomy_window(first, 5)
    roomy_window(second, 5)

    assert _predict(client, first).status_code == 200
    assert _predict(client, first).status_code == 429
    assert _predict(client, second).status_code == 200


def test_every_key_gets_the_default_limits_unless_one_is_set(client):
    response = _predict(client, APIKeyFactory())

    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "100"
    assert response["X-RateLimit-Limit-Tokens"] == "100000"


@override_settings(GATEWAY_DEFAULT_LIMITS={"requests_per_minute": 0, "tokens_per_minute": 0, "max_in_flight": 0})
def test_unlimited_key_gets_no_rate_headers(client):
    response = _predict(client, APIKeyFactory())

    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response


def test_requests_refused_for_scope_do_not_use_up_the_limit(client, roomy_window):
    key = APIKeyFactory(requests_per_minute=1, allowed_endpoints=["predict"])
    roomy_window(key, 5)

    denied = client.post("/api/v1/embeddings", {"input": "x"}, format="json", HTTP_X_API_KEY=key.plaintext)

    assert denied.status_code == 403
    assert _predict(client, key).status_code == 200


def test_lowering_a_keys_limit_applies_to_its_next_request(client, roomy_window):
    key = APIKeyFactory(requests_per_minute=100)
    roomy_window(key, 5)
    assert _predict(client, key).status_code == 200

    key.requests_per_minute = 1
    key.save()
    _predict(client, key)

    assert _predict(client, key).status_code == 429


def test_tokens_per_minute_reserve_the_most_a_request_can_use_and_count_what_it_used(client, roomy_window):
    # "I loved it" is 10 characters: it may use up to 12 tokens and uses 5 ([CLS] i loved it [SEP]).
    key = APIKeyFactory(tokens_per_minute=20)
    roomy_window(key, 5)

    first, second, third = (_predict(client, key, "I loved it", HTTP_CACHE_CONTROL="no-cache") for _ in range(3))

    assert (first.status_code, first["X-RateLimit-Remaining-Tokens"]) == (200, "15")
    assert (second.status_code, second["X-RateLimit-Remaining-Tokens"]) == (200, "10")
    # 10 used + up to 12 more would pass 20.
    assert third.status_code == 429
    assert third.json()["error"]["type"] == "rate_limited"
    assert "20 tokens per minute" in third.json()["error"]["message"]
    assert third["X-RateLimit-Remaining-Tokens"] == "10"
    assert int(third["Retry-After"]) >= 1
    assert RequestLog.objects.get(request_id=third["X-Request-ID"]).input_tokens == 0


def test_tokens_per_minute_count_embeddings_inputs(client, roomy_window):
    key = APIKeyFactory(tokens_per_minute=1000)
    roomy_window(key, 5)

    response = client.post(
        "/api/v1/embeddings", {"input": ["first text", "second text"]}, format="json", HTTP_X_API_KEY=key.plaintext
    )

    assert response.status_code == 200
    used = response.json()["usage"]["total_tokens"]
    assert response["X-RateLimit-Remaining-Tokens"] == str(1000 - used)


def test_cache_hits_use_no_tokens(client, roomy_window):
    key = APIKeyFactory(tokens_per_minute=100)
    roomy_window(key, 5)
    first = _predict(client, key)

    hit = _predict(client, key)

    assert hit.json()["cached"] is True
    assert first["X-RateLimit-Remaining-Tokens"] == "95"
    assert "X-RateLimit-Remaining-Tokens" not in hit
