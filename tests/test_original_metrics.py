"""The original service's metric families, next to the gateway's own: its names, types and
labels, `endpoint` being the matched route's path pattern, summed across worker processes."""

import os
import re
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import APIKeyFactory, ChatVersionFactory, ProviderFactory
from tests.servers import gunicorn, http, served_database_url

CHAT = "/v1/chat/completions"
RESULT = "/batch_result/{task_id}"


TOKEN = "scrape-secret"


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    """/metrics as deployed: behind its token."""
    settings.GATEWAY_METRICS_TOKEN = TOKEN


def _sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.fixture
def down(db):
    """`down:x`, whose provider refuses connections at once."""
    return ChatVersionFactory(name="down", version="x", provider=ProviderFactory(max_retries=0))


def test_families_have_the_original_names_types_and_labels(authed, client, gpt, down, standin):
    task_id = uuid.uuid4()
    before = {
        "ok": _sample("prediction_requests_total", endpoint=CHAT, status="200"),
        "latency": _sample("prediction_latency_seconds_count", endpoint=CHAT),
        "result": _sample("prediction_requests_total", endpoint=RESULT, status="404"),
        "upstream": _sample("model_errors_total", error_type="upstream_error"),
        "invalid": _sample("model_errors_total", error_type="invalid_request"),
    }

    ask = {"messages": [{"role": "user", "content": "hi"}]}
    assert authed.post(CHAT, {"model": "gpt", **ask}, format="json").status_code == 200
    assert authed.post(CHAT, {"model": "down", **ask}, format="json").status_code == 502
    assert authed.post(CHAT, {"model": "gpt", "messages": []}, format="json").status_code == 400
    assert authed.get(f"/batch_result/{task_id}").status_code == 404

    assert _sample("prediction_requests_total", endpoint=CHAT, status="200") - before["ok"] == 1
    assert _sample("prediction_latency_seconds_count", endpoint=CHAT) - before["latency"] == 3
    assert _sample("prediction_requests_total", endpoint=RESULT, status="404") - before["result"] == 1
    assert _sample("model_errors_total", error_type="upstream_error") - before["upstream"] == 1
    assert _sample("model_errors_total", error_type="invalid_request") == before["invalid"]  # the client's error
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert str(task_id) not in body
    families = _families(body)
    assert families["prediction_requests"].type == "counter"
    assert families["prediction_latency_seconds"].type == "histogram"
    assert families["model_errors"].type == "counter"
    assert {tuple(sorted(s.labels)) for s in families["prediction_requests"].samples if s.name.endswith("_total")} == {
        ("endpoint", "status")
    }
    assert {s.labels["endpoint"] for s in families["prediction_latency_seconds"].samples} >= {CHAT, RESULT}
    assert {tuple(s.labels) for s in families["model_errors"].samples if s.name.endswith("_total")} == {("error_type",)}
    assert "gateway_requests" in families  # the gateway's own stay


@pytest.mark.django_db(transaction=True)
def test_families_sum_the_traffic_of_two_worker_processes(standin, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the served gateway shares the test database: run on PostgreSQL (make test)")
    ChatVersionFactory(name="gpt", version="a", provider=ProviderFactory(name="standin", base_url=standin.url))
    ChatVersionFactory(name="down", version="x", provider=ProviderFactory(max_retries=0))
    key = {"X-API-Key": APIKeyFactory().plaintext}
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        "DATABASE_URL": served_database_url(),
        "WEB_WORKERS": "2",
        "GATEWAY_METRICS_TOKEN": TOKEN,
        "WEB_THREADS": "8",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_ACCESS_LOG": "false",
        "STANDIN_API_KEY": "sk-standin-secret",
    }
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    calls = [
        ("POST", CHAT, {"model": "gpt", **ask}, CHAT),
        ("POST", CHAT, {"model": "down", **ask}, CHAT),  # 502, then 503 once its breaker opens
        ("GET", f"/batch_result/{uuid.uuid4()}", None, RESULT),
        ("GET", f"/batch_result/{uuid.uuid4()}", None, RESULT),
    ]
    sent: Counter = Counter()
    with gunicorn(env) as base:
        with ThreadPoolExecutor(8) as pool:
            for _ in range(10):  # concurrent rounds until both workers have answered
                answered = pool.map(lambda c: (c[3], str(http(c[0], base + c[1], c[2], key)[0])), calls * 10)
                sent.update(answered)
                if len(_worker_pids(metrics_dir)) >= 2:
                    break
        scrapes = [_families(_get(base + "/metrics")) for _ in range(4)]
    failed = {"upstream_error": sent[(CHAT, "502")], "upstream_unavailable": sent[(CHAT, "503")]}

    assert len(_worker_pids(metrics_dir)) == 2
    rounds = sum(sent.values()) // 40
    assert sent[(CHAT, "200")] == 10 * rounds and sent[(RESULT, "404")] == 20 * rounds
    assert failed["upstream_error"] >= 1
    for families in scrapes:  # whichever worker answers sees both workers' counts
        requests = {
            (s.labels["endpoint"], s.labels["status"]): s.value
            for s in families["prediction_requests"].samples
            if s.name == "prediction_requests_total"
        }
        assert requests == sent
        latency = {
            s.labels["endpoint"]: s.value
            for s in families["prediction_latency_seconds"].samples
            if s.name == "prediction_latency_seconds_count"
        }
        assert latency == {CHAT: sum(sent[(CHAT, status)] for status in ("200", "502", "503")), RESULT: 20 * rounds}
        errors = {
            s.labels["error_type"]: s.value for s in families["model_errors"].samples if s.name.endswith("_total")
        }
        assert errors == {kind: count for kind, count in failed.items() if count}


def _worker_pids(directory) -> set[str]:
    return {m.group(1) for name in os.listdir(directory) if (m := re.fullmatch(r"counter_(\d+)\.db", name))}


def _get(url: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()
