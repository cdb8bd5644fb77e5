"""The gateway as granian serves it for the bench (`BENCH_SERVER=granian`, `BENCH_ONLY=servers`;
docs/decisions/0080-wsgi-server.md). Granian has no per-worker hook: it calls `application()`
in each worker (`--factory`) before that worker accepts a connection, so the worker does here
what gunicorn.conf.py's post_worker_init does, with the same settings."""

import importlib.util
from pathlib import Path


def application():
    # Read first: it sets the PyTorch threads per worker before Django reads its settings.
    path = Path(__file__).parents[1] / "gunicorn.conf.py"
    spec = importlib.util.spec_from_file_location("gateway_gunicorn_conf", path)
    assert spec and spec.loader
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)

    from config.wsgi import application as gateway

    conf.post_worker_init(None)
    return gateway
