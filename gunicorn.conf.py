"""gunicorn settings for `make run` and production (see docs/decisions/0001-serving-stack.md).

WSGI with threaded workers: a request waiting on a model or an upstream holds a thread,
not a core; each worker process loads the models once and shares them across its threads.
"""

import gc
import os
import shutil
import tempfile

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
# Threads mostly wait (on a model's batch or an upstream), so many per worker
# (docs/decisions/0001-serving-stack.md).
threads = int(os.environ.get("WEB_THREADS", "160"))
# PyTorch threads per worker: the cores shared out, so the workers' forward passes do not
# oversubscribe them (docs/benchmarks.md).
os.environ.setdefault("TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
# A slow upstream call may take a minute; the worker must not be killed meanwhile.
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
graceful_timeout = 30
# Recycle a worker after this many requests (0: never); the jitter keeps workers from
# restarting together. A replacement loads its models before it accepts a request.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
keepalive = 5
# The request log is the access log; gunicorn's own would double the per-request writes.
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"


# Prometheus multiprocess mode: each worker writes its samples to files in this directory and
# /metrics (answered by any worker) sums them. It must be set before a worker imports
# prometheus_client; unless the operator names one, each server gets a directory of its own.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-prometheus-")


def on_starting(server):
    """Start from an empty metrics directory: files left by an earlier run would be summed in."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for entry in os.scandir(directory):
        if entry.is_file() and entry.name.endswith(".db"):
            os.remove(entry.path)


def child_exit(server, worker):
    """A dead worker's counters stay summed; its live-only gauges are dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def tune_gc():
    """Keep the garbage collector off what the worker loaded: full collections walk every object
    of torch, transformers and Django while holding the GIL, stalling every thread
    (docs/benchmarks.md). bench/bare/gunicorn.conf.py tunes its workers the same way."""
    gc.collect()
    gc.freeze()
    # Requests allocate many short-lived objects: collect the young generation less often.
    gc.set_threshold(50_000, 50, 100)


def post_worker_init(worker):
    """Load every production model in this worker before it takes traffic, tune the collector,
    and time its pauses from then on (gateway_gc_pause_seconds): the pauses requests see, not
    the one-off collection of the start-up."""
    from gateway.metrics import gc_pauses
    from inference import pool

    pool.warm_up()
    tune_gc()
    gc_pauses.install()


def worker_exit(server, worker):
    """Finish the shadow answers and guardrail checks this worker accepted, then write the
    request log rows it still holds, before it goes."""
    from experiments import background
    from gateway.record.log_writer import writer

    background.shutdown()
    writer.flush()
