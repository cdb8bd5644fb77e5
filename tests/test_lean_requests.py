"""A finished API request leaves nothing for the garbage collector, and costs few Redis round
trips (docs/benchmarks.md: cyclic garbage is what made the collector's long pauses).

Requests go through Django's WSGI handler, as a server calls it (so the tests commit to the
database); the test client would add reference cycles of its own (its response keeps the
request, its template signals).
"""

import gc
import io
import json

import pytest
import redis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from tests.factories import APIKeyFactory, ChatVersionFactory

pytestmark = pytest.mark.usefixtures("default_models")

UNLIMITED = {"requests_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000, "max_in_flight": 1000}


def _caller(key):
    app = WSGIHandler()

    def call(path: str, body: dict) -> tuple[str, bytes]:
        data = json.dumps(body).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "HTTP_HOST": "testserver",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": "application/json",
            "HTTP_X_API_KEY": key.plaintext,
        }
        status = []
        response = app(environ, lambda line, headers: status.append(line))
        try:
            content = b"".join(response)
        finally:
            response.close()
        return status[0], content

    return call


def _garbage_of(call, path: str, bodies: list[dict], expected_status: str) -> int:
    for body in bodies[:3]:  # first calls load models, fill the snapshot and connection pools
        assert call(path, body)[0].startswith(expected_status)
    gc.collect()
    gc.disable()
    try:
        for body in bodies[3:]:
            status, content = call(path, body)
            assert status.startswith(expected_status), content
        return gc.collect()
    finally:
        gc.enable()


@pytest.fixture
def chat_version(standin):
    return ChatVersionFactory(name="gpt", version="a", provider__base_url=standin.url)


@pytest.mark.django_db(transaction=True)
def test_chat_classify_and_embeddings_leave_no_cyclic_garbage(chat_version):
    call = _caller(APIKeyFactory(**UNLIMITED))
    chats = [{"model": "gpt", "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(13)]
    texts = [{"text": f"a fine film, number {i}"} for i in range(13)]
    inputs = [{"input": [f"sentence {i}", "another"]} for i in range(13)]

    assert _garbage_of(call, "/v1/chat/completions", chats, "200") == 0
    assert _garbage_of(call, "/api/v1/predict", texts, "200") == 0
    assert _garbage_of(call, "/v1/embeddings", inputs, "200") == 0


@pytest.mark.django_db(transaction=True)
def test_refused_requests_leave_no_cyclic_garbage():
    call = _caller(APIKeyFactory(**UNLIMITED))
    invalid = [{"text": 42} for _ in range(13)]

    assert _garbage_of(call, "/api/v1/predict", invalid, "400") == 0


@pytest.mark.django_db(transaction=True)
def test_a_chat_request_costs_at_most_seven_redis_round_trips(chat_version, monkeypatch):
    """Per-address limits, the configuration generation, requests per minute (django-ratelimit:
    two), the reservation with the call's place in flight, the circuit breaker's state, and the
    settlement that gives the place back."""
    if not settings.REDIS_URL:
        pytest.skip("counts Redis commands (make test)")
    call = _caller(APIKeyFactory(**UNLIMITED))
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hello"}]}
    call("/v1/chat/completions", body)
    commands = []
    execute = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    status, _ = call("/v1/chat/completions", body)

    assert status.startswith("200")
    assert len(commands) <= 7, commands
