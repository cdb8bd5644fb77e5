"""Configuration kept per process (gateway/caching/snapshot.py): reused between changes, never past one."""

import pytest
from django.core.cache import cache
from django.test import override_settings

from gateway.caching import snapshot
from gateway.models import RequestLog
from inference import registry
from inference.models import Status, Task
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.usefixtures("default_models")

PREDICT = "/api/v1/predict"


@pytest.fixture(autouse=True)
def _needs_shared_cache(settings):
    if not settings.GATEWAY_SNAPSHOT_ENABLED:
        pytest.skip("the snapshot needs REDIS_URL (make test)")


def _predict(authed):
    return authed.post(PREDICT, {"text": "I loved it"}, format="json")


def test_a_repeated_request_reads_only_the_generation_and_writes_its_log_row(authed, django_assert_num_queries):
    assert _predict(authed).status_code == 200

    # Key, running experiments, production version: all kept; the one query is the log INSERT.
    with django_assert_num_queries(1) as queries:
        assert _predict(authed).status_code == 200

    assert "INSERT" in queries.captured_queries[0]["sql"]


def test_promoting_a_version_reaches_the_next_request(authed):
    first = _predict(authed)
    candidate = ModelVersionFactory(name="sentiment", version="v-next")

    candidate.promote()
    second = _predict(authed)

    assert first.json()["model_version"] != "v-next"
    assert second.json()["model_version"] == "v-next"


def test_a_revoked_key_is_refused_on_the_next_request(authed, api_key):
    assert _predict(authed).status_code == 200

    api_key.revoke()

    refused = _predict(authed)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "This API key has been revoked."


def test_a_change_published_by_another_process_drops_what_this_one_kept():
    before = registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION)
    # Another process changed the row with SQL and published a new generation.
    type(before).objects.filter(pk=before.pk).update(status=Status.ARCHIVED)
    assert registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION) == before  # still kept

    cache.set(snapshot.GENERATION_KEY, "published-elsewhere", timeout=None)

    assert registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION) is None


@override_settings(GATEWAY_SNAPSHOT_MAX_AGE_S=0)
def test_nothing_is_kept_past_the_maximum_age(django_assert_num_queries):
    registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION)

    with django_assert_num_queries(1):
        registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION)


def test_an_unreachable_cache_reads_the_database(authed, settings, django_assert_num_queries):
    settings.CACHES = {
        alias: {**config, "LOCATION": "redis://127.0.0.1:9/0"} for alias, config in settings.CACHES.items()
    }

    answers = [_predict(authed) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200]
    assert RequestLog.objects.filter(status_code=200).count() == 2
    with django_assert_num_queries(1):  # every read goes to the database again
        registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION)
