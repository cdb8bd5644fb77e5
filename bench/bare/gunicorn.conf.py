"""gunicorn settings of the bare forwarding view: the gateway's own (the repository's
gunicorn.conf.py: workers, threads, timeouts, the garbage collector's tuning), less the hooks
that load models and write the request log."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("gateway_gunicorn_conf", Path(__file__).parents[2] / "gunicorn.conf.py")
assert _spec and _spec.loader
_gateway = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gateway)

bind = _gateway.bind
worker_class = _gateway.worker_class
workers = _gateway.workers
threads = _gateway.threads
timeout = _gateway.timeout
graceful_timeout = _gateway.graceful_timeout
keepalive = _gateway.keepalive
max_requests = _gateway.max_requests
max_requests_jitter = _gateway.max_requests_jitter
accesslog = _gateway.accesslog
errorlog = _gateway.errorlog
on_exit = _gateway.on_exit  # removes the metrics directory the gateway's settings made


def post_worker_init(worker):
    _gateway.tune_gc()
