"""A finished API request leaves nothing for the garbage collector, and costs few Redis round
trips (docs/benchmarks.md: cyclic garbage is what made the collector's long pauses)."""

import json
import os
import subprocess
import sys

import pytest
import redis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from tests.factories import APIKeyFactory, ChatVersionFactory
from tests.servers import served_database_url, wsgi_post

pytestmark = [pytest.mark.usefixtures("default_models"), pytest.mark.django_db(transaction=True)]

UNLIMITED = {"requests_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000, "max_in_flight": 1000}


def _garbage(key, path: str, bodies: list[dict], status: str = "200") -> int:
    """Objects the collector finds after the requests, in a fresh process (tests/garbage_probe.py)."""
    if not settings.REDIS_URL:
        pytest.skip("the probe process shares the test database and Redis (make test)")
    env = {**os.environ, "DATABASE_URL": served_database_url(), "REDIS_URL": settings.REDIS_URL}
    command = [sys.executable, "-m", "tests.garbage_probe", key.plaintext, path, json.dumps(bodies), status]
    probe = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["requests"] == len(bodies) - 3
    return found["garbage"]


@pytest.fixture
def chat_version(standin):
    return ChatVersionFactory(name="gpt", version="a", provider__base_url=standin.url)


def test_a_chat_completion_leaves_no_cyclic_garbage(chat_version):
    key = APIKeyFactory(**UNLIMITED)
    chats = [{"model": "gpt", "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(13)]

    assert _garbage(key, "/v1/chat/completions", chats) == 0


def test_classification_and_embeddings_leave_no_cyclic_garbage():
    key = APIKeyFactory(**UNLIMITED)

    assert _garbage(key, "/api/v1/predict", [{"text": f"a fine film, number {i}"} for i in range(13)]) == 0
    assert _garbage(key, "/v1/embeddings", [{"input": [f"sentence {i}", "another"]} for i in range(13)]) == 0


def test_a_refused_request_leaves_no_cyclic_garbage():
    key = APIKeyFactory(**UNLIMITED)

    assert _garbage(key, "/api/v1/predict", [{"text": 42}] * 13, status="400") == 0


def test_a_chat_request_costs_at_most_six_redis_round_trips(chat_version, monkeypatch):
    """Per-address limits, the configuration generation, requests per minute (django-ratelimit:
    two), the reservation with the call's place in flight, and the settlement that gives the
    place back; the circuit breaker was found closed a moment ago (BREAKER_CLOSED_REUSE_S)."""
    if not settings.REDIS_URL:
        pytest.skip("counts Redis commands (make test)")
    key = APIKeyFactory(**UNLIMITED)
    app = WSGIHandler()
    data = json.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hello"}]}).encode()

    def call() -> str:
        return wsgi_post(app, "/v1/chat/completions", data, key.plaintext)[0]

    call()
    commands = []
    execute = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)

    assert call().startswith("200")
    assert len(commands) <= 6, commands
