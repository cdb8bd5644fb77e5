import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gateway.models import RequestLog
from inference.breaker import Breaker
from inference.models import FallbackChain, FallbackStep
from observability import rollups
from observability.tasks import refresh_rollups
from tests.factories import APIKeyFactory, ChatVersionFactory, RequestLogFactory, TeamFactory
from tests.servers import ROOT, gunicorn, http, served_database_url

_REQUEST_LABELS = ("endpoint", "model", "version", "variant", "status")
TOKEN = "scrape-secret"


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    """A deployment's /metrics: behind its token, and read afresh on every scrape in tests."""
    settings.GATEWAY_METRICS_TOKEN = TOKEN
    settings.GATEWAY_METRICS_READ_EVERY_S = 0


def _scrape(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return response.content.decode()


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _requests_by(samples, *labels: str) -> Counter:
    counts: Counter = Counter()
    for sample in samples:
        if sample.name == "gateway_requests_total":
            counts[tuple(sample.labels[label] for label in labels)] += sample.value
    return counts


def _count(endpoint, model, version, status) -> float:
    labels = dict(zip(_REQUEST_LABELS, (endpoint, model, version, "", status), strict=True))
    return REGISTRY.get_sample_value("gateway_requests_total", labels) or 0.0


@pytest.mark.usefixtures("default_models")
def test_metrics_count_each_outcome_with_bounded_labels(authed, api_key, client):
    version = ("predict", "sentiment", "sst2-head-minilm-v1")
    before = {
        "ok": _count(*version, "200"),
        "invalid": _count("predict", "", "", "400"),
        "unknown_model": _count("predict", "", "", "404"),
    }

    authed.post("/api/v1/predict", {"text": "I loved it"}, format="json")
    authed.post("/api/v1/predict", {"text": "I loved it too"}, format="json")
    authed.post("/api/v1/predict", {"text": ""}, format="json")
    authed.post("/api/v1/predict", {"text": "x", "model": "ghost-model-typed-by-a-client"}, format="json")

    assert _count(*version, "200") - before["ok"] == 2
    assert _count("predict", "", "", "400") - before["invalid"] == 1  # refused before routing: no model
    assert _count("predict", "", "", "404") - before["unknown_model"] == 1
    body = _scrape(client)
    families = _families(body)  # parses: valid exposition
    assert "ghost-model-typed-by-a-client" not in body
    assert api_key.prefix not in body and api_key.plaintext not in body
    assert "I loved it" not in body
    tokens = {s.labels["direction"]: s.value for s in families["gateway_tokens"].samples if s.name.endswith("_total")}
    assert tokens["input"] > 0
    latency = families["gateway_request_latency_seconds"]
    assert any(s.name.endswith("_count") and s.value >= 2 for s in latency.samples)
    assert "gateway_overhead_latency_seconds" in families
    assert "django_http_requests_total_by_method" in families  # django-prometheus's own


def test_metrics_need_the_bearer_token(client, db):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_a_non_ascii_bearer_is_refused_not_an_error(client, db):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secrét").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ключ").status_code == 401


def test_without_a_token_metrics_are_open_only_on_the_embedded_default(client, db, settings):
    settings.GATEWAY_METRICS_TOKEN = ""

    settings.GATEWAY_EMBEDDED = False
    deployed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    settings.GATEWAY_EMBEDDED = True
    embedded = client.get("/metrics")

    assert deployed.status_code == 401
    assert "GATEWAY_METRICS_TOKEN" in deployed.content.decode()
    assert embedded.status_code == 200


def test_queue_backlog_and_rollup_age_are_read_at_scrape_time(client, db):
    RequestLogFactory()
    rollups.refresh()
    refresh_rollups.apply_async()  # no worker consumes the maintenance queue in this test

    families = _families(_scrape(client))

    depths = {s.labels["queue"]: s.value for s in families["gateway_batch_queue_depth"].samples}
    assert depths["maintenance"] == 1
    assert depths["celery"] == 0
    (lag,) = families["gateway_rollup_lag_seconds"].samples
    assert 0 <= lag.value < 60


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_of_two_worker_processes_match_the_request_log(default_models, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the served gateway shares the test database: run on PostgreSQL (make test)")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    _leave_stale_samples(metrics_dir)
    key = APIKeyFactory()
    env = {
        "DATABASE_URL": served_database_url(),
        "WEB_WORKERS": "2",
        "WEB_THREADS": "8",
        "TORCH_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_METRICS_TOKEN": TOKEN,
    }
    requests = [
        ("/api/v1/predict", {"text": "I loved it"}, {"X-API-Key": key.plaintext}),
        ("/predict", {"text": "dull and boring"}, {"X-API-Key": key.plaintext}),
        ("/api/v1/predict", {"text": ""}, {"X-API-Key": key.plaintext}),
        ("/api/v1/embeddings", {"input": ["a", "b"]}, {}),
    ]
    with gunicorn(env) as base:
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            # Concurrent rounds until both workers have answered (bounded: 10 rounds of 40).
            for _ in range(10):
                list(pool.map(lambda i: http("POST", base + requests[i % 4][0], *requests[i % 4][1:]), range(40)))
                sent += 40
                if len(_worker_pids(metrics_dir)) >= 2:
                    break
        scrapes = [_families(_get(base + "/metrics")) for _ in range(4)]
        unauthorized = _status_without_token(base + "/metrics")

    assert len(_worker_pids(metrics_dir)) == 2
    assert unauthorized == 401
    assert RequestLog.objects.count() == sent
    logged = Counter(
        (_route(row.endpoint), row.model_name if row.model_version_id else "", str(row.status_code))
        for row in RequestLog.objects.all()
    )
    for families in scrapes:  # whichever worker answers the scrape sees both workers' counts
        assert _requests_by(families["gateway_requests"].samples, "endpoint", "model", "status") == logged
        (latency_count,) = [
            s.value
            for s in families["gateway_request_latency_seconds"].samples
            if s.name.endswith("_count") and s.labels["endpoint"] == "predict" and s.labels["model"] == "sentiment"
        ]
        assert latency_count == logged[("predict", "sentiment", "200")]


def _route(path: str) -> str:
    return {"/api/v1/predict": "predict", "/predict": "seed-predict", "/api/v1/embeddings": "embeddings"}[path]


def _get(url: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def _status_without_token(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _worker_pids(directory) -> set[str]:
    return {m.group(1) for name in os.listdir(directory) if (m := re.fullmatch(r"counter_(\d+)\.db", name))}


def _leave_stale_samples(directory) -> None:
    """Samples a previous server left behind: the new server must not add them to its counts."""
    code = (
        "from prometheus_client import Counter\n"
        f"Counter('gateway_requests', '', {list(_REQUEST_LABELS)!r})"
        ".labels('predict', 'sentiment', 'sst2-head-minilm-v1', '', '200').inc(1000)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    assert _worker_pids(directory)


def _sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def chat_with_backup(provider):
    gpt = ChatVersionFactory(name="gpt", version="a", provider=provider)
    backup = ChatVersionFactory(name="gpt-backup", version="b", provider=provider)
    FallbackStep.objects.create(chain=FallbackChain.objects.create(model_name="gpt"), position=1, version=backup)
    return gpt, backup


def test_upstream_retries_fallbacks_and_breaker_state_are_counted(authed, chat_with_backup, standin, settings):
    gpt, _ = chat_with_backup
    settings.BREAKER_FAILURE_THRESHOLD = 1
    settings.BREAKER_COOLDOWN_S = 60
    gpt.provider.max_retries = 1
    gpt.provider.save()
    standin.script("upstream-a", [{"status": 503}, {"status": 503}])
    before = {
        "retries": _sample("gateway_upstream_retries_total", model="gpt", version="a", reason="503"),
        "fallbacks": _sample("gateway_fallbacks_total", model="gpt-backup", version="b"),
        "tokens": _sample("gateway_tokens_total", model="gpt-backup", version="b", direction="output"),
    }

    response = authed.post(
        "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}, format="json"
    )

    assert response.status_code == 200
    row = RequestLog.objects.get()
    assert row.fallback_used and row.attempts == 3
    assert _sample("gateway_upstream_retries_total", model="gpt", version="a", reason="503") - before["retries"] == 1
    assert _sample("gateway_fallbacks_total", model="gpt-backup", version="b") - before["fallbacks"] == 1
    assert _sample("gateway_circuit_breaker_open", model="gpt", version="a") == 1
    output = _sample("gateway_tokens_total", model="gpt-backup", version="b", direction="output")
    assert output - before["tokens"] == row.output_tokens > 0

    Breaker(gpt.pk).record_success()  # a successful probe closes it
    assert _sample("gateway_circuit_breaker_open", model="gpt", version="a") == 0


def test_time_waiting_on_the_upstream_is_not_counted_as_gateway_overhead(authed, chat_with_backup, standin):
    standin.script("upstream-a", [{"delay": 0.3}])
    slow_overhead = "gateway_overhead_latency_seconds_bucket"
    before = _sample(slow_overhead, endpoint="openai-chat", le="0.2")
    total_before = _sample("gateway_overhead_latency_seconds_count", endpoint="openai-chat")

    response = authed.post(
        "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}, format="json"
    )

    assert response.status_code == 200
    assert RequestLog.objects.get().latency_ms >= 300
    assert _sample("gateway_overhead_latency_seconds_count", endpoint="openai-chat") - total_before == 1
    assert _sample(slow_overhead, endpoint="openai-chat", le="0.2") - before == 1  # under 200 ms


def test_budget_use_of_keys_and_teams_is_read_at_scrape_time_labelled_by_id(client, db):
    team = TeamFactory(name="search", budget_usd=Decimal("10"))
    key = APIKeyFactory(name="=HYPERLINK(evil)", team=team, budget_usd=Decimal("4"))
    APIKeyFactory()  # no budget: no series
    RequestLogFactory(api_key=key, key_prefix=key.prefix, team=team, cost_usd=Decimal("1"))

    body = _scrape(client)

    used = {(s.labels["scope"], s.labels["id"]): s.value for s in _families(body)["gateway_budget_used_ratio"].samples}
    assert used[("key", str(key.pk))] == pytest.approx(0.25)
    assert used[("team", str(team.pk))] == pytest.approx(0.1)
    # Nothing a caller or a key's holder chose: no prefix, no names.
    assert key.prefix not in body and "HYPERLINK" not in body and 'id="search"' not in body


def test_scrape_time_reads_cost_a_bounded_number_of_queries_and_are_reused_briefly(client, db, settings):
    team = TeamFactory(budget_usd=Decimal("10"))
    for _ in range(12):
        APIKeyFactory(team=team, budget_usd=Decimal("4"))
    settings.GATEWAY_METRICS_READ_EVERY_S = 60

    with CaptureQueriesContext(connection) as first:
        _scrape(client)
    with CaptureQueriesContext(connection) as second:
        _scrape(client)

    # Keys, teams, one GROUP BY per kind of owner without a live counter, the rollups' age:
    # however many owners have a budget.
    assert len(first.captured_queries) <= 5, [q["sql"] for q in first.captured_queries]
    assert len(second.captured_queries) == 0  # read a moment ago: exposed as read
