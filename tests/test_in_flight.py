"""A key's model calls in flight are capped (gateway/limits/in_flight.py), across processes,
and a crashed holder never keeps its place."""

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection

from gateway.api.errors import RateLimited
from gateway.limits import admission
from gateway.record.context import RequestContext
from tests.factories import APIKeyFactory, ChatVersionFactory, TeamFactory
from tests.servers import gunicorn, http, served_database_url


def _take(key) -> admission.Reservation:
    return admission.reserve(RequestContext(api_key=key, key_prefix=key.prefix), tokens=1, cost=Decimal("0"))


@pytest.mark.django_db
def test_a_sixth_request_of_a_key_capped_at_five_is_refused_until_one_finishes():
    key = APIKeyFactory(max_in_flight=5)
    held = [_take(key) for _ in range(5)]

    with pytest.raises(RateLimited) as refused:
        _take(key)

    assert refused.value.retry_after == 1
    assert "may have 5 at once" in refused.value.message
    held[0].settle()
    _take(key)


@pytest.mark.django_db
def test_a_call_that_holds_no_web_thread_takes_no_place():
    key = APIKeyFactory(max_in_flight=1)
    _take(key)
    batch_item = RequestContext(api_key=key, key_prefix=key.prefix, holds_web_thread=False)

    admission.reserve(batch_item, tokens=1, cost=Decimal("0")).settle()

    with pytest.raises(RateLimited):
        _take(key)


@pytest.mark.django_db
def test_the_cap_is_the_keys_else_its_teams_else_the_default(settings):
    settings.GATEWAY_DEFAULT_LIMITS = {**settings.GATEWAY_DEFAULT_LIMITS, "max_in_flight": 2}
    team_key = APIKeyFactory(team=TeamFactory(max_in_flight=1))
    plain_key = APIKeyFactory()

    _take(team_key)
    with pytest.raises(RateLimited):
        _take(team_key)
    _take(plain_key)
    _take(plain_key)
    with pytest.raises(RateLimited):
        _take(plain_key)


@pytest.mark.django_db
def test_a_place_left_by_a_crashed_process_stops_counting_once_its_time_is_up():
    if not settings.REDIS_URL:
        pytest.skip("the places are kept in Redis (make test)")
    key = APIKeyFactory(max_in_flight=1)
    # What a process killed mid-request leaves: its member, scored by the time it had to be gone by.
    redis = get_redis_connection("default")
    redis.zadd(f"gw:inflight:{key.pk}", {"killed-mid-request": int(time.time()) - 1})

    _take(key)


@pytest.mark.django_db(transaction=True)
def test_live_server_answers_five_concurrent_slow_calls_of_a_key_capped_at_five_and_refuses_the_sixth(standin):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the server shares the test database and Redis: run on PostgreSQL and Redis (make test)")
    version = ChatVersionFactory(name="gpt", version="a", provider__base_url=standin.url)
    standin.script(version.upstream_model, [{"delay": 1.5}] * 6)
    key = APIKeyFactory(max_in_flight=5)
    env = {"DATABASE_URL": served_database_url(), "REDIS_URL": settings.REDIS_URL, "WEB_WORKERS": "2"}
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hello"}]}

    with gunicorn(env) as base:

        def ask(_):
            return http("POST", base + "/v1/chat/completions", body, {"X-API-Key": key.plaintext})

        with ThreadPoolExecutor(6) as threads:
            answers = list(threads.map(ask, range(6)))
        after = ask(None)

    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] * 5 + [429]
    refused = next(body for status, _, body in answers if status == 429)
    assert "requests in flight" in refused["error"]["message"]
    assert after[0] == 200  # every place was given back
