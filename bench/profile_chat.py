"""Where a chat request's CPU goes, step by step (docs/benchmarks.md, "Where a request's time goes").

Runs N chat completions through Django's WSGI handler in this process, as a server calls it,
against a stand-in upstream in its own process, under cProfile on CPU time; prints the CPU per
request and each step's share (cumulative, so steps nest), plus the cyclic garbage per request.

    .venv/bin/python bench/profile_chat.py [N]

Uses the benchmark's database and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL); run `make bench`
once first so that they hold its models.
"""

import cProfile
import gc
import json
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

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

from gateway.models import APIKey  # noqa: E402
from inference.models import Provider  # noqa: E402
from tests.servers import free_port, serving, wsgi_post  # noqa: E402

# Each step: a label and the function (file:line(name) as cProfile names it, by suffix) whose
# cumulative time it is. Steps nest: "pipeline" holds "reserve", "upstream call" and "settle".
STEPS = [
    ("whole request (WSGI handler)", "django/core/handlers/wsgi.py", "__call__"),
    ("per-address limits", "gateway/limits/addresses.py", "admit"),
    ("authenticate (key from snapshot)", "gateway/keys/authentication.py", "authenticate"),
    ("requests per minute (django-ratelimit)", "gateway/limits/rate_limits.py", "_count_request"),
    ("validate body (serializer)", "rest_framework/serializers.py", "is_valid"),
    ("pipeline.answer", "inference/pipeline.py", "answer"),
    ("  plan", "inference/planning.py", "plan"),
    ("  reserve (tokens, budgets, place in flight)", "gateway/limits/admission.py", "reserve"),
    ("  upstream call (urllib3)", "inference/upstream_client.py", "post"),
    ("  settle", "gateway/limits/admission.py", "settle"),
    ("record: log row, metrics, access log", "gateway/record/request_log.py", "record"),
    ("  request-log row", "gateway/record/request_log.py", "write"),
    ("  gateway metrics", "gateway/metrics/families.py", "observe_request"),
    ("  access log line", "gateway/record/access_log.py", "log_request"),
    ("django-prometheus middleware (before)", "django_prometheus/middleware.py", "process_request"),
    ("django-prometheus middleware (after)", "django_prometheus/middleware.py", "process_response"),
    ("Redis commands, all of them", "redis/client.py", "execute_command"),
]


def main(requests: int) -> None:
    port = free_port()
    standin = [sys.executable, "-m", "tests.standin_upstream", "--port", str(port)]
    with serving(standin, {}, f"http://127.0.0.1:{port}/v1/models"):
        Provider.objects.filter(name="bench-fast").update(base_url=f"http://127.0.0.1:{port}/v1")
        limits = {"requests_per_minute": 2_000_000_000, "tokens_per_minute": 2_000_000_000, "max_in_flight": 1_000}
        key = APIKey.objects.create_key(name=f"profile-{int(time.time())}", **limits)[1]
        ask = _caller(key)
        for i in range(50):
            ask(i)
        profile = cProfile.Profile(time.process_time)
        started = time.process_time()
        profile.enable()
        for i in range(requests):
            ask(1000 + i)
        profile.disable()
        unprofiled = time.process_time()
        for i in range(requests):
            ask(10**6 + i)
        cpu_ms = (time.process_time() - unprofiled) / requests * 1000
        gc.collect()
        gc.disable()
        for i in range(100):
            ask(10**7 + i)
        garbage = gc.collect() / 100
        gc.enable()
    profiled_ms = (unprofiled - started) / requests * 1000
    print(f"CPU per request: {cpu_ms:.2f} ms ({profiled_ms:.2f} ms under the profiler, whose shares follow)")
    print(f"cyclic garbage per request: {garbage:.1f} objects\n")
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for label, path, name in STEPS:
        total = sum(
            cumulative
            for (file, _, function), (_, _, _, cumulative, _) in stats.items()
            if file.endswith(path) and function == name
        )
        print(f"{label:<48}{total / requests * 1000:>7.3f} ms  {total / (profiled_ms * requests / 1000):>6.1%}")


def _caller(key: str):
    app = WSGIHandler()

    def ask(i: int) -> None:
        data = json.dumps({"model": "bench-fast", "messages": [{"role": "user", "content": f"question {i}"}]}).encode()
        status, _ = wsgi_post(app, "/v1/chat/completions", data, key)
        if not status.startswith("200"):
            sys.exit(f"the gateway answered {status}")

    return ask


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
