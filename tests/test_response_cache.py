from decimal import Decimal

import pytest
from django.test import override_settings

from gateway.caching import response_cache
from gateway.models import RequestLog
from gateway.record.context import RequestContext
from inference.models import CacheScope
from tests.factories import APIKeyFactory, ModelVersionFactory, TeamFactory, sentiment_priced_per_request

pytestmark = pytest.mark.usefixtures("default_models")

PREDICT = "/api/v1/predict"


@pytest.fixture
def sentiment():
    return sentiment_priced_per_request("0.002")


def _predict(client, key, body=None, **headers):
    return client.post(PREDICT, body or {"text": "I loved it"}, format="json", HTTP_X_API_KEY=key.plaintext, **headers)


def _row(response) -> RequestLog:
    return RequestLog.objects.get(request_id=response["X-Request-ID"])


def test_repeated_request_is_answered_from_the_cache_and_logged_with_the_cost_saved(client, api_key, sentiment):
    first = _predict(client, api_key)

    second = _predict(client, api_key)

    assert first.json()["cached"] is False
    assert second.json()["cached"] is True
    assert {k: v for k, v in second.json().items() if k not in ("cached", "request_id")} == {
        k: v for k, v in first.json().items() if k not in ("cached", "request_id")
    }
    row = _row(second)
    assert row.cache_hit is True
    assert row.cost_usd == 0
    assert row.cost_saved_usd == _row(first).cost_usd == Decimal("0.002")
    assert (row.input_tokens, row.output_tokens) == (0, 0)


def test_key_order_and_unicode_form_do_not_split_the_cache(client, api_key):
    _predict(client, api_key, {"text": "caf\u00e9 au lait", "model": "sentiment"})

    hit = client.post(
        PREDICT,
        data='{"model": "sentiment", "text": "cafe\u0301 au lait"}',
        content_type="application/json",
        HTTP_X_API_KEY=api_key.plaintext,
    )

    assert hit.json()["cached"] is True


def test_different_text_or_version_is_a_miss(client, api_key, sentiment):
    ModelVersionFactory(name="sentiment", version="candidate")
    _predict(client, api_key)

    assert _predict(client, api_key, {"text": "I loved it!"}).json()["cached"] is False
    assert _predict(client, api_key, {"text": "I loved it", "model": "sentiment:candidate"}).json()["cached"] is False


def test_editing_the_version_drops_its_cached_answers(client, api_key, sentiment):
    _predict(client, api_key)

    sentiment.config = {**sentiment.config, "temperature": 0.5}
    sentiment.save()

    assert _predict(client, api_key).json()["cached"] is False


def test_no_cache_from_the_client_skips_the_lookup_and_refreshes_the_entry(client, api_key):
    _predict(client, api_key)

    fresh = _predict(client, api_key, HTTP_CACHE_CONTROL="no-cache")

    assert fresh.json()["cached"] is False
    assert _predict(client, api_key).json()["cached"] is True


def test_no_store_from_the_client_keeps_the_answer_out_of_the_cache(client, api_key):
    _predict(client, api_key, HTTP_CACHE_CONTROL="no-store")

    assert _predict(client, api_key).json()["cached"] is False


def test_ttl_zero_turns_the_cache_off_for_a_version(client, api_key, sentiment):
    sentiment.cache_ttl_s = 0
    sentiment.save()
    _predict(client, api_key)

    assert _predict(client, api_key).json()["cached"] is False


@override_settings(GATEWAY_RESPONSE_CACHE=False)
def test_the_cache_can_be_turned_off_for_the_whole_gateway(client, api_key):
    _predict(client, api_key)

    assert _predict(client, api_key).json()["cached"] is False


def test_embeddings_are_cached_with_their_usage(client, api_key):
    body = {"input": ["first text", "second text"]}
    first = client.post("/api/v1/embeddings", body, format="json", HTTP_X_API_KEY=api_key.plaintext)

    hit = client.post("/api/v1/embeddings", body, format="json", HTTP_X_API_KEY=api_key.plaintext)

    assert hit.json()["cached"] is True
    assert hit.json()["data"] == first.json()["data"]
    assert hit.json()["usage"] == first.json()["usage"]


def test_answers_are_per_team_by_default_and_no_cache_hit_header_crosses_teams(client, sentiment):
    assert sentiment.cache_scope == CacheScope.TEAM and not sentiment.cache_is_shared
    _predict(client, APIKeyFactory(team=TeamFactory()))

    other_team = _predict(client, APIKeyFactory(team=TeamFactory()))

    assert other_team.json()["cached"] is False
    assert "X-Cache" not in other_team


def test_a_version_marked_shared_serves_every_team_from_one_entry(client, sentiment):
    sentiment.cache_scope = CacheScope.SHARED
    sentiment.save()
    _predict(client, APIKeyFactory(team=TeamFactory()))

    assert _predict(client, APIKeyFactory(team=TeamFactory())).json()["cached"] is True


def test_team_scoped_version_never_serves_one_teams_answer_to_another(client, sentiment):
    sentiment.cache_scope = CacheScope.TEAM
    sentiment.save()
    red, blue = TeamFactory(), TeamFactory()
    _predict(client, APIKeyFactory(team=red))

    assert _predict(client, APIKeyFactory(team=blue)).json()["cached"] is False
    assert _predict(client, APIKeyFactory(team=red)).json()["cached"] is True
    assert _predict(client, APIKeyFactory()).json()["cached"] is False


def test_upstream_backends_are_team_scoped_unless_marked_shared(sentiment):
    sentiment.backend = "openai"

    assert not sentiment.cache_is_shared
    sentiment.cache_scope = CacheScope.SHARED
    assert sentiment.cache_is_shared


def test_sampled_calls_are_cached_only_where_the_version_allows(api_key, sentiment):
    ctx = RequestContext(api_key=api_key)

    def cached(**options):
        return response_cache.entry(ctx, sentiment, task="chat", inputs=["hi"], **options).key is not None

    assert cached(params={"temperature": 0}, sampled=False)
    assert not cached(params={"temperature": 0.7}, sampled=True)
    sentiment.cache_sampled = True
    assert cached(params={"temperature": 0.7}, sampled=True)


def test_parameters_are_part_of_the_key(api_key, sentiment):
    ctx = RequestContext(api_key=api_key)

    def key(params):
        return response_cache.entry(ctx, sentiment, task="chat", inputs=["hi"], params=params).key

    assert key({"max_tokens": 10, "stop": ["."]}) == key({"stop": ["."], "max_tokens": 10})
    assert key({"max_tokens": 10}) != key({"max_tokens": 11})
