"""gunicorn settings for `make run` and production (see docs/decisions/0001-serving-stack.md).

WSGI with threaded workers: a request waiting on a model or an upstream holds a thread,
not a core; each worker process loads the models once and shares them across its threads.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
# Threads mostly wait (on a model's batch or an upstream): 160 per worker held 0.92 of ideal
# at 256 concurrent slow upstream calls (../shared/MEASUREMENTS.md).
threads = int(os.environ.get("WEB_THREADS", "160"))
# A slow upstream call may take a minute; the worker must not be killed meanwhile.
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# The request log is the access log; gunicorn's own would double the per-request writes.
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"


def post_worker_init(worker):
    """Load every production model in this worker before it takes traffic."""
    from inference import pool

    pool.warm_up()


def worker_exit(server, worker):
    """Finish the shadow answers and guardrail checks this worker accepted before it goes."""
    from experiments import background

    background.shutdown()
