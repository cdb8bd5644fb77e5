"""`make chaos`: every fault of tests/chaos.py in turn under wrk's steady load, then the table.

PostgreSQL stopped for CHAOS_POSTGRES_S seconds (default 20), Redis restarted, the upstream
answering 500s then timing out then recovering, a web worker SIGKILLed, a Celery worker
SIGKILLed mid-batch. The gateway reaches PostgreSQL through the harness's TCP proxy and uses a
private redis-server: the shared ones are never stopped (docs/reliability.md). Runs in a
database of its own (CHAOS_DATABASE_URL, default gateway_chaos). Exits 1 if any fault lost or
duplicated a row or answered 500.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chaos import Chaos, PrivateRedis, table  # noqa: E402

DATABASE_URL = os.environ.get("CHAOS_DATABASE_URL", "postgres://root@127.0.0.1:5432/gateway_chaos")
POSTGRES_S = float(os.environ.get("CHAOS_POSTGRES_S", "20"))


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="chaos-"))
    redis = PrivateRedis(scratch).start()
    try:
        # The harness's own Celery client and caches talk to the private Redis too.
        os.environ.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=DATABASE_URL, REDIS_URL=redis.url)
        _create_database()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("bootstrap", verbosity=0)  # the sentiment model of the batch job
        chaos = Chaos(DATABASE_URL, scratch, connections=16)
        with chaos.running(redis):
            for fault in (
                lambda: chaos.postgres_outage(POSTGRES_S),
                chaos.redis_restart,
                lambda: chaos.upstream_errors(5),
                lambda: chaos.upstream_timeouts(5),
                chaos.web_worker_killed,
                chaos.celery_worker_killed,
            ):
                outcome = fault()
                print(f"{outcome.fault}: done", flush=True)
    finally:
        redis.stop()
    print()
    print(table(chaos.outcomes))
    print()
    for o in chaos.outcomes:
        print(
            f"{o.fault}: rows without an answer {o.rows_unanswered}; 503/429 without Retry-After "
            f"{o.refused_without_retry_after}; budget counter minus the log's sum {o.budget_drift_usd} USD"
            + (f"; {o.note}" if o.note else "")
        )
    return 0 if all(o.clean for o in chaos.outcomes) else 1


def _create_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    sys.exit(main())
