"""Start real server processes for tests: bound to 127.0.0.1 on a free port, stopped after."""

import io
import json
import os
import shutil
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


def wsgi_post(app, path: str, data: bytes, api_key: str) -> tuple[str, bytes]:
    """(status line, body) of a JSON POST through a WSGI application in this process, called
    as a server calls it (Django's test client keeps the request alive from its response)."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
        "CONTENT_LENGTH": str(len(data)),
        "CONTENT_TYPE": "application/json",
        "HTTP_X_API_KEY": api_key,
    }
    status = []
    response = app(environ, lambda line, headers: status.append(line))
    try:
        content = b"".join(response)
    finally:
        response.close()
    return status[0], content


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
def serving(command: list[str], env: dict, ready_url: str, timeout_s=120, own_process_group=False):
    """Run a server process until the block ends; its output goes to a file (a pipe nobody
    reads would fill up and stall it) whose tail is shown if it fails to start. With
    `own_process_group` it leads a process group, to be killed with its children."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=own_process_group,
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
    with _gunicorn(env, ready_path, timeout_s, own_process_group=False) as node:
        yield node.url


@dataclass
class Node:
    """One gateway machine: a gunicorn master and its workers, in a process group of their own."""

    url: str
    port: int
    process: subprocess.Popen

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, as a machine that dies would."""
        if self.process.poll() is None:  # while its leader lives, the process group is surely ours
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextmanager
def gunicorn_node(env: dict, ready_path="/ready", timeout_s=120):
    """`gunicorn()` leading a process group of its own, so that a test can kill the node whole."""
    with _gunicorn(env, ready_path, timeout_s, own_process_group=True) as node:
        yield node


@contextmanager
def _gunicorn(env: dict, ready_path: str, timeout_s: float, own_process_group: bool):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "config.wsgi"]
    env = {**env, "BIND": f"127.0.0.1:{port}"}
    with serving(command, env, base + ready_path, timeout_s, own_process_group) as process:
        yield Node(base, port, process)


HAPROXY = os.environ.get("HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"

# The test's balancer, configured as deploy/haproxy/haproxy.cfg is for compose: round robin,
# /ready checks, a connection that failed is retried on another node, and a request already
# sent is retried only when its method is idempotent.
_HAPROXY_CFG = """\
global
    maxconn 2000
    stats socket {admin} mode 600 level admin

defaults
    mode http
    option forwardfor
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # Generous: a busy node answers late, a dead one refuses at once.
    timeout check 5s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend gateway
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /ready ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS
    # Which node answered, for the tests to see the balancing.
    http-response set-header X-Served-By %s
    default-server check inter {check_ms}ms fall 2 rise 2
{servers}
"""


@dataclass
class Balancer:
    url: str
    admin_socket: Path

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's own view of each node (`show stat`): status (UP, DOWN), stot (requests sent), ..."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.admin_socket))
            sock.sendall(b"show stat\n")
            answer = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
        header, *rows = [line for line in answer.splitlines() if line]
        names = header.lstrip("# ").split(",")
        stats = [dict(zip(names, row.split(","), strict=False)) for row in rows]
        return {s["svname"]: s for s in stats if s["svname"] not in {"FRONTEND", "BACKEND"}}


@contextmanager
def haproxy(nodes: dict[str, int], check_ms=300, timeout_s=30):
    """A real HAProxy on a free port in front of the named node ports, until the block ends;
    started once every node is UP in its health checks."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="haproxy-") as scratch:
        scratch = Path(scratch)
        servers = "\n".join(f"    server {name} 127.0.0.1:{node_port}" for name, node_port in nodes.items())
        config = scratch / "haproxy.cfg"
        config.write_text(
            _HAPROXY_CFG.format(admin=scratch / "admin.sock", port=port, check_ms=check_ms, servers=servers)
        )
        balancer = Balancer(f"http://127.0.0.1:{port}", scratch / "admin.sock")
        with open(scratch / "haproxy.log", "wb") as log:
            process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy did not start: {(scratch / 'haproxy.log').read_text()[-3000:]}")
                try:
                    if all(s["status"] == "UP" for s in balancer.servers().values()):
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            yield balancer
        finally:
            process.terminate()
            process.wait(timeout=10)


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
