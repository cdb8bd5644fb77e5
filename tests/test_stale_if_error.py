"""RFC 5861's stale-if-error: when every candidate fails, a cached answer past its freshness
but within the version's window answers, marked stale; never a made-up one."""

import time

import pytest

from gateway.models import RequestLog
from tests.factories import ChatVersionFactory

FAILING = [{"status": 500}] * 3  # every attempt of the provider (max_retries 2)
ASK = {"model": "gpt", "messages": [{"role": "user", "content": "what is the capital of France"}], "temperature": 0}


@pytest.fixture
def cached_gpt(gpt):
    """`gpt:a` whose answers are fresh for 1 s, then usable on error for 2 s more."""
    gpt.cache_ttl_s = 1
    gpt.cache_stale_if_error_s = 2
    gpt.save()
    return gpt


def _chat(authed):
    return authed.post("/v1/chat/completions", ASK, format="json")


def test_a_stale_answer_is_served_when_the_upstream_is_down(authed, cached_gpt, standin):
    fresh = _chat(authed)
    time.sleep(1.1)  # past its freshness
    standin.script("upstream-a", FAILING)

    stale = _chat(authed)

    assert stale.status_code == 200
    assert stale["X-Cache"] == "stale"
    assert stale.json() == fresh.json()
    assert len(standin.calls("upstream-a")) == 4  # it was asked again, and failed three times
    row = RequestLog.objects.order_by("created_at").last()
    assert row.served_stale and row.cache_hit and row.status_code == 200
    assert row.cost_usd == 0 and row.cost_saved_usd > 0
    assert [step.split(": ")[0] for step in row.route] == ["gpt:a"]


def test_no_stale_answer_past_its_window(authed, cached_gpt, standin):
    _chat(authed)
    time.sleep(3.1)  # past freshness and the stale-if-error window
    standin.script("upstream-a", FAILING)

    response = _chat(authed)

    assert response.status_code == 502
    assert "X-Cache" not in response
    assert not RequestLog.objects.filter(served_stale=True).exists()


def test_a_version_without_a_window_answers_the_error(authed, gpt, standin):
    gpt.cache_ttl_s = 1
    gpt.save()
    _chat(authed)
    time.sleep(1.1)
    standin.script("upstream-a", FAILING)

    assert _chat(authed).status_code == 502


def test_a_stale_answer_is_not_served_while_the_upstream_answers(authed, cached_gpt, standin):
    _chat(authed)
    time.sleep(1.1)

    response = _chat(authed)

    assert response.status_code == 200
    assert "X-Cache" not in response
    assert len(standin.calls("upstream-a")) == 2


def test_the_gateways_own_bodies_say_cached(authed, provider, standin):
    version = ChatVersionFactory(
        name="embedder", version="e", task="embeddings", provider=provider, cache_ttl_s=1, cache_stale_if_error_s=5
    )
    body = {"model": "embedder", "input": ["hello"]}
    first = authed.post("/api/v1/embeddings", body, format="json")
    time.sleep(1.1)
    standin.script(version.upstream_model, FAILING)

    stale = authed.post("/api/v1/embeddings", body, format="json")

    assert first.json()["cached"] is False
    assert stale.status_code == 200 and stale["X-Cache"] == "stale"
    assert stale.json()["cached"] is True
    assert stale.json()["data"] == first.json()["data"]
