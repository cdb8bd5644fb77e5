"""Start real server processes for tests: bound to 127.0.0.1 on a free port, stopped after."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_database_url() -> str:
    """The URL of the database pytest-django created, for processes the test starts."""
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def http(method: str, url: str, body=None, headers=None, timeout=30):
    """(status, headers, parsed JSON body) for one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


@contextmanager
def serving(command: list[str], env: dict, ready_url: str, timeout_s=120):
    """Run a server process until the block ends; its output goes to a file (a pipe nobody
    reads would fill up and stall it) whose tail is shown if it fails to start."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    raise RuntimeError(f"{command[2]} did not start: {output.read().decode()[-3000:]}")
                try:
                    if http("GET", ready_url, timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.3)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def gunicorn(env: dict, ready_path="/ready", timeout_s=120):
    """The gateway under gunicorn with the project's gunicorn.conf.py, as `make run` starts it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "gateway.wsgi"]
    with serving(command, {**env, "BIND": f"127.0.0.1:{port}"}, base + ready_path, timeout_s):
        yield base


def eventually(query, timeout_s=10.0):
    """The first truthy result of `query()`: a streamed response's log row is written by the
    server thread just after the last event reaches the client."""
    deadline = time.monotonic() + timeout_s
    while not (result := query()):
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
    return result


@contextmanager
def celery_worker(env: dict, log_path: Path):
    """A real Celery worker on the project's app (gateway.celery), consuming from REDIS_URL."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "gateway", "worker", "--pool", "solo", "--loglevel", "WARNING"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
