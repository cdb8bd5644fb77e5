"""Where a chat request's CPU goes: cProfile over N requests through Django's test client.

Run after `make bench` has created its database:
    .venv/bin/python bench/profile_chat.py [N]
Uses the benchmark's database and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL) and a stand-in
upstream in this process; prints the per-request time and the top functions by cumulative time.
"""

import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(
    DJANGO_SETTINGS_MODULE="tests.settings",
    DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/gateway_bench"),
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
)

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402

from gateway.models import APIKey  # noqa: E402
from inference.models import Provider  # noqa: E402
from tests.standin_upstream import StandinUpstream  # noqa: E402


def main(requests: int) -> None:
    standin = StandinUpstream().start()
    Provider.objects.filter(name="bench-fast").update(base_url=standin.url)
    key = APIKey.objects.create_key(name="profile")[1]
    client = Client(HTTP_HOST="localhost", HTTP_X_API_KEY=key)
    body = '{"model": "bench-fast", "messages": [{"role": "user", "content": "hi"}]}'

    def ask():
        return client.post("/v1/chat/completions", body, content_type="application/json")

    for _ in range(20):
        ask()
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for _ in range(requests):
        ask()
    profile.disable()
    print(f"{(time.perf_counter() - started) / requests * 1000:.1f} ms per request (under the profiler)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    standin.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
