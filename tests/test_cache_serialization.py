"""What the gateway keeps in Redis is JSON, never a pickle: whoever can write to Redis must not be
able to run code in the gateway. Answers live in the "responses" cache, apart from counters."""

import json
import pickle

import pytest
from django.conf import settings
from django.core.cache import caches
from django_redis import get_redis_connection

from config.celery import app as celery_app
from gateway.models import RequestLog

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the caches are Redis only with REDIS_URL")

CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "say hi"}], "temperature": 0}


def _raw_entries() -> dict[str, bytes]:
    """The response cache's entries as stored in Redis: {key: the bytes}."""
    redis = get_redis_connection("responses")
    return {key.decode(): redis.get(key) for key in redis.scan_iter("*gw:rc:*")}


def test_every_cache_and_celery_serialize_json():
    for alias in ("default", "responses"):
        assert settings.CACHES[alias]["OPTIONS"]["SERIALIZER"] == "django_redis.serializers.json.JSONSerializer"
    assert celery_app.conf.accept_content == ["json"]
    assert celery_app.conf.task_serializer == celery_app.conf.result_serializer == "json"


@pytest.mark.usefixtures("default_models")
def test_a_local_answer_is_cached_as_json(authed):
    first = authed.post("/api/v1/predict", {"text": "I loved it"}, format="json")

    (raw,) = _raw_entries().values()
    entry = json.loads(raw)
    second = authed.post("/api/v1/predict", {"text": "I loved it"}, format="json")

    assert entry["answer"][0]["result"]["label"] == first.json()["label"]
    assert second.json()["cached"] is True
    assert second.json()["label"] == first.json()["label"]


def test_an_upstream_answer_is_cached_as_json_and_served_byte_for_byte(authed, gpt, standin):
    first = authed.post("/v1/chat/completions", CHAT, format="json")

    (raw,) = _raw_entries().values()
    second = authed.post("/v1/chat/completions", CHAT, format="json")

    assert json.loads(raw)["answer"]  # the upstream's body as text, in a JSON document
    assert second.status_code == 200
    assert second.content == first.content
    assert len(standin.calls()) == 1
    assert RequestLog.objects.filter(cache_hit=True).count() == 1


def test_a_pickled_entry_is_a_miss_never_unpickled(authed, gpt, standin):
    authed.post("/v1/chat/completions", CHAT, format="json")
    (key,) = _raw_entries()
    planted = pickle.dumps({"answer": "anything", "cost_usd": "0"})
    get_redis_connection("responses").set(key, planted)

    response = authed.post("/v1/chat/completions", CHAT, format="json")

    assert response.status_code == 200
    assert len(standin.calls()) == 2  # answered by the upstream again
    assert json.loads(get_redis_connection("responses").get(key))  # and stored as JSON over it
    assert caches["responses"].get(key.split(":", 2)[-1])["cost_usd"]
