"""Dashboard render time at 10k and at 1M request-log rows (`make bench-dashboards`).

Two databases of their own (BENCH_DATABASE_URL with suffixes _10k and _1m, created when
missing, emptied first) are seeded with synthetic rows over the same 30 days. One process per
database (Django is configured for one database per process) renders the dashboards
server-side with Django's test client: middleware, queries and template, no network. The two
are timed in alternation, request by request, so load from anything else on the machine
weighs on both sizes alike. Writes bench/results/dashboards-<time>.json. The dashboards read
rollups, so the 1M-row times should stay within 2x the 10k-row times.
"""

import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [
    ("overview, last 24 hours", "/admin/dashboards/?period=24h"),
    ("overview, last 7 days", "/admin/dashboards/"),
    ("overview, last 30 days", "/admin/dashboards/?period=30d"),
    ("cost, last 30 days", "/admin/dashboards/cost/?period=30d"),
    ("models, last 30 days", "/admin/dashboards/models/?period=30d"),
    ("keys, last 30 days", "/admin/dashboards/keys/?period=30d"),
    ("overview CSV, last 30 days", "/admin/dashboards/?period=30d&export=series"),
]
SIZES = {"10k": 10_000, "1m": 1_000_000}
DAYS = 30
WARM_UP, RUNS = 3, 21


def _create_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        name = parsed.path.lstrip("/")
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def _renderer(url: str, rows: int, pipe) -> None:
    """Child process: seed one database, then time the dashboard paths the parent sends."""
    _create_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from gateway.models import RequestLog
    from observability.models import DailyRollup, HourlyRollup, RollupState
    from observability.seeding import seed_request_logs

    setup_test_environment()  # the test client's host name
    call_command("migrate", verbosity=0)
    call_command("bootstrap", stdout=open(os.devnull, "w"))  # noqa: SIM115
    tables = ", ".join(model._meta.db_table for model in (RequestLog, HourlyRollup, DailyRollup, RollupState))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # feedback rows point at the log
    started = time.perf_counter()
    seed_request_logs(rows=rows, days=DAYS, seed=rows)
    seeded_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {tables}")
    user, _ = get_user_model().objects.get_or_create(username="bench-operator", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    pipe.send(
        {
            "rows": RequestLog.objects.count(),
            "seed_and_rollup_s": round(seeded_s, 1),
            "hourly_rollup_rows": HourlyRollup.objects.count(),
            "daily_rollup_rows": DailyRollup.objects.count(),
        }
    )
    while (path := pipe.recv()) is not None:
        started = time.perf_counter()
        status = client.get(path).status_code
        pipe.send(((time.perf_counter() - started) * 1000, status))


def main() -> int:
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/gateway_bench")
    context = multiprocessing.get_context("spawn")
    renderers = {}
    for label, rows in SIZES.items():
        parent, child = context.Pipe()
        process = context.Process(target=_renderer, args=(f"{base}_{label}", rows, child), daemon=True)
        process.start()
        renderers[label] = (process, parent)
    report = {"started_at": datetime.now(UTC).isoformat(), "machine": _machine(), "days": DAYS, "sizes": {}}
    for label, (_, pipe) in renderers.items():
        report["sizes"][label] = pipe.recv()
        print(f"{label}: {report['sizes'][label]}")

    times: dict[str, dict[str, list[float]]] = {label: {page: [] for page, _ in PAGES} for label in SIZES}
    for round_ in range(WARM_UP + RUNS):
        for page, path in PAGES:
            for label, (_, pipe) in renderers.items():
                pipe.send(path)
                elapsed_ms, status = pipe.recv()
                assert status == 200, (label, path, status)
                if round_ >= WARM_UP:
                    times[label][page].append(elapsed_ms)
    for _, pipe in renderers.values():
        pipe.send(None)

    for label in SIZES:
        report["sizes"][label]["pages"] = {
            page: {"median_ms": round(statistics.median(values), 2), "min_ms": round(min(values), 2)}
            for page, values in times[label].items()
        }
    small, large = (report["sizes"][label]["pages"] for label in SIZES)
    report["ratio_1m_to_10k"] = {page: round(large[page]["median_ms"] / small[page]["median_ms"], 2) for page in small}
    report["within_2x"] = all(ratio <= 2 for ratio in report["ratio_1m_to_10k"].values())
    for page, _ in PAGES:
        print(
            f"{page:30} 10k {small[page]['median_ms']:7.1f} ms   1M {large[page]['median_ms']:7.1f} ms   "
            f"ratio {report['ratio_1m_to_10k'][page]:.2f}"
        )
    out = ROOT / "bench" / "results" / f"dashboards-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"within 2x: {report['within_2x']}; written to {out.relative_to(ROOT)}")
    return 0 if report["within_2x"] else 1


def _machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


if __name__ == "__main__":
    sys.exit(main())
