"""Start real server processes for tests: bound to 127.0.0.1 on a free port, stopped after."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
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
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "config.wsgi"]
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


@dataclass
class Worker:
    process: subprocess.Popen
    hostname: str
    log_path: Path

    def log_tail(self, chars=3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process, pool children, embedded beat), as a crash would."""
        if self.process.poll() is None:  # while its leader lives, the process group is surely ours
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextmanager
def celery_worker(env: dict, log_path: Path, timeout_s=120):
    """A Celery worker as `make worker` starts it (with beat), on the tests' broker; stopped after.

    Its output goes to a file: a pipe nobody reads would fill up and stall the worker. It
    leads its own process group, so that it can be killed with its children.
    """
    from config.celery import app

    hostname = f"test-{uuid.uuid4().hex[:8]}@127.0.0.1"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--loglevel", "INFO"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*command, "--hostname", hostname, "--schedule", str(log_path.with_suffix(".beat"))],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, hostname, log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while not app.control.ping(destination=[hostname], timeout=0.5):
            if process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited: {worker.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not answer a ping: {worker.log_tail()}")
        yield worker
    finally:
        if process.poll() is None:
            process.terminate()  # warm shutdown: running tasks finish, then the children exit
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
