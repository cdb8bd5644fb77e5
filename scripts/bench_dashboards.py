"""Dashboard render time at 10k and at 1M request-log rows (`make bench-dashboards`).

Uses a database of its own (BENCH_DATABASE_URL, created when missing, emptied first), seeds
10k synthetic rows over 30 days, times every dashboard server-side (Django's test client:
middleware, queries and template, no network), adds rows up to 1M over the same 30 days,
and times them again. Writes bench/results/dashboards-<time>.json. The dashboards read
rollups, so the 1M-row times should stay within 2x the 10k-row times.
"""

import json
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
SIZES = [10_000, 1_000_000]
DAYS = 30
WARM_UP, RUNS = 3, 15


def _create_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def _time_pages(client) -> dict[str, dict]:
    results = {}
    for label, path in PAGES:
        for _ in range(WARM_UP):
            assert client.get(path).status_code == 200, path
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, path
        results[label] = {"path": path, "median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2)}
        print(f"  {label:32} median {results[label]['median_ms']:8.2f} ms")
    return results


def main() -> int:
    url = os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/gateway_bench")
    _create_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
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

    setup_test_environment()  # the test client's testserver host
    call_command("migrate", verbosity=0)
    call_command("bootstrap", verbosity=0)
    tables = [model._meta.db_table for model in (RequestLog, HourlyRollup, DailyRollup, RollupState)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
    user, _ = get_user_model().objects.get_or_create(username="bench-operator", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)

    report = {"started_at": datetime.now(UTC).isoformat(), "machine": _machine(), "days": DAYS, "sizes": {}}
    seeded = 0
    for size in SIZES:
        started = time.perf_counter()
        seed_request_logs(rows=size - seeded, days=DAYS, seed=size)
        seeded = size
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")
        print(f"{size:,} rows (seeded and rolled up in {time.perf_counter() - started:.0f} s):")
        report["sizes"][str(size)] = {
            "seed_and_rollup_s": round(time.perf_counter() - started, 1),
            "hourly_rollup_rows": HourlyRollup.objects.count(),
            "daily_rollup_rows": DailyRollup.objects.count(),
            "pages": _time_pages(client),
        }
    small, large = (report["sizes"][str(size)]["pages"] for size in SIZES)
    report["ratio_1m_to_10k"] = {
        label: round(large[label]["median_ms"] / small[label]["median_ms"], 2) for label in small
    }
    report["within_2x"] = all(ratio <= 2 for ratio in report["ratio_1m_to_10k"].values())
    out = ROOT / "bench" / "results" / f"dashboards-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ratio_1m_to_10k"], indent=2))
    print(f"within 2x: {report['within_2x']}; written to {out.relative_to(ROOT)}")
    return 0 if report["within_2x"] else 1


def _machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


if __name__ == "__main__":
    sys.exit(main())
