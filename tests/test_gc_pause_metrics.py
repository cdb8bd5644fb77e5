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
def test_every_served_worker_times_its_collections_from_its_start(default_models):
    if connection.vendor != "postgresql":
        pytest.skip("the served gateway shares the test database: run on PostgreSQL (make test)")
    key = APIKeyFactory()
    env = {
        "DATABASE_URL": served_database_url(),
        "WEB_WORKERS": "2",
        "WEB_THREADS": "4",
        "TORCH_THREADS": "1",
        "GATEWAY_METRICS_TOKEN": TOKEN,
    }
    with gunicorn(env) as base:
        assert http("POST", base + "/api/v1/predict", {"text": "fine"}, {"X-API-Key": key.plaintext})[0] == 200
        time.sleep(gc_pauses.FLUSH_EVERY_S * 1.5)  # each worker moves its pauses into the metrics once a second
        request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}

    # Installed in each worker after its start-up collection: every generation's series is
    # there, and none holds that collection (gc.collect() then gc.freeze() in post_worker_init).
    pauses = families["gateway_gc_pause_seconds"].samples
    counts = {s.labels["generation"]: s.value for s in pauses if s.name.endswith("_count")}
    assert set(counts) == {"0", "1", "2"}
    assert counts["2"] == 0
    longest = {s.labels["generation"] for s in families["gateway_gc_pause_max_seconds"].samples}
    assert longest == {"0", "1", "2"}
