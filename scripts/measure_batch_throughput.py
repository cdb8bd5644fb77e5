"""Items per second of one batch job on a real Celery worker, for a worker pool setting.

Backs the pool choice in docs/decisions/0010-batch-jobs.md. Runs against the database and
Redis in DATABASE_URL / REDIS_URL (migrated here; it adds a throwaway key, its jobs and log
rows, and deletes them after). The worker's model load is not measured: a one-item job warms it first.

    DATABASE_URL=postgres://root@127.0.0.1:5432/gateway REDIS_URL=redis://127.0.0.1:6379/15 \\
    .venv/bin/python scripts/measure_batch_throughput.py --items 1000 --pool threads --concurrency 2 \\
        --torch-threads 2 --sentences "$SHARED_DATA_DIR/sst2/train.tsv"
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from config.celery import app  # noqa: E402
from gateway.models import APIKey, RequestLog  # noqa: E402
from gateway.record.context import RequestContext  # noqa: E402
from inference.batches.models import BatchJob, JobStatus  # noqa: E402
from inference.batches.services import batch_job_submit  # noqa: E402


def texts_for(args) -> list[str]:
    if not args.sentences:
        return [f"review {i}: {'wonderful' if i % 2 == 0 else 'terrible'}" for i in range(args.items)]
    lines = Path(args.sentences).read_text().splitlines()[1:]
    sentences = [line.split("\t")[0].strip() for line in lines]
    sentences = [s for s in sentences if len(s) > 30]  # as in docs/decisions/0010-batch-jobs.md
    return random.Random(0).sample(sentences, args.items)


def run_job(key, texts) -> BatchJob:
    ctx = RequestContext()
    ctx.set_key(key)
    job = batch_job_submit(ctx=ctx, key=key, texts=texts, task="text-classification", model_ref=None)
    while job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        time.sleep(0.2)
        job.refresh_from_db()
    return job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--pool", default="threads", help="threads, prefork or solo")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--torch-threads", type=int, default=2, help="per worker process (per child for prefork)")
    parser.add_argument("--sentences", help="SST-2 train.tsv; synthetic short reviews if omitted")
    args = parser.parse_args()
    if app.conf.task_always_eager:
        sys.exit("Set REDIS_URL: this measures a worker on the Redis broker.")

    call_command("migrate", verbosity=0)
    call_command("bootstrap", verbosity=0)
    key, _ = APIKey.objects.create_key(name=f"measure-{uuid.uuid4().hex[:6]}")
    env = {
        **os.environ,
        "WORKER_POOL": args.pool,
        "WORKER_CONCURRENCY": str(args.concurrency),
        "TORCH_THREADS": str(args.torch_threads),
    }
    hostname = f"measure-{uuid.uuid4().hex[:6]}@127.0.0.1"
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--hostname",
                hostname,
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while not app.control.ping(destination=[hostname], timeout=0.5):
                if worker.poll() is not None:
                    log.seek(0)
                    sys.exit(f"The worker exited:\n{log.read().decode()[-2000:]}")
            # One chunk per pool slot: every prefork child loads its own model.
            run_job(key, ["warm up"] * args.concurrency * settings.GATEWAY_BATCH_CHUNK_SIZE)
            job = run_job(key, texts_for(args))
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    seconds = (job.finished_at - job.started_at).total_seconds()
    print(
        f"pool={args.pool} concurrency={args.concurrency} torch_threads={args.torch_threads} "
        f"items={job.total_items} status={job.status} seconds={seconds:.1f} items_per_s={job.total_items / seconds:.0f}"
    )
    BatchJob.objects.filter(api_key=key).delete()
    RequestLog.objects.filter(key_prefix=key.prefix).delete()
    key.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
