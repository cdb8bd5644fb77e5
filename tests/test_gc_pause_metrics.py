import gc
import time
import urllib.request

import pytest
from django.db import connection
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import gc_pauses
from tests.factories import APIKeyFactory
from tests.servers import gunicorn, http, served_database_url

TOKEN = "scrape-secret"


def _count(generation: str) -> float:
    return REGISTRY.get_sample_value("gateway_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_a_forced_collection_is_recorded_as_a_pause_of_the_oldest_generation():
    gc_pauses.install()
    gc_pauses.flush()
    before = _count("2")

    gc.collect()
    gc_pauses.flush()

    assert _count("2") == before + 1
    longest = REGISTRY.get_sample_value("gateway_gc_pause_max_seconds", {"generation": "2"})
    total = REGISTRY.get_sample_value("gateway_gc_pause_seconds_sum", {"generation": "2"})
    assert 0 < longest <= total


def test_installing_twice_times_each_collection_once():
    gc_pauses.install()
    gc_pauses.install()
    gc_pauses.flush()
    before = _count("2")

    gc.collect()
    gc_pauses.flush()

    assert _count("2") == before + 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_served_workers_expose_their_pauses_on_metrics(default_models):
    if connection.vendor != "postgresql":
        pytest.skip("the served gateway shares the test database: run on PostgreSQL (make test)")
    key = APIKeyFactory(requests_per_minute=100_000)  # past the default 100 a minute
    env = {
        "DATABASE_URL": served_database_url(),
        "WEB_WORKERS": "1",
        "WEB_THREADS": "4",
        "TORCH_THREADS": "1",
        "GATEWAY_METRICS_TOKEN": TOKEN,
    }
    with gunicorn(env) as base:
        # Enough allocations for the worker's young-generation threshold (gunicorn.conf.py) to
        # trigger collections while it serves; bounded at 400 requests.
        for sent in range(1, 401):
            status = http("POST", base + "/api/v1/predict", {"text": f"fine {sent}"}, {"X-API-Key": key.plaintext})[0]
            assert status == 200
            if sent % 50 == 0 and _served_pause_count(base) > 0:
                break
        families = _scrape(base)

    counts = [s.value for s in families["gateway_gc_pause_seconds"].samples if s.name.endswith("_count")]
    assert sum(counts) > 0
    assert max(s.value for s in families["gateway_gc_pause_max_seconds"].samples) > 0


def _scrape(base: str) -> dict:
    time.sleep(gc_pauses.FLUSH_EVERY_S * 1.5)  # the worker moves its pauses into the metrics each second
    request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _served_pause_count(base: str) -> float:
    families = _scrape(base)
    family = families.get("gateway_gc_pause_seconds")
    return sum(s.value for s in family.samples if s.name.endswith("_count")) if family else 0.0
