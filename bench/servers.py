"""The servers a bench scenario loads, each started afresh: the gateway under gunicorn
(gunicorn.conf.py, as `make run` starts it) or granian (bench/granian_app.py, the same worker
and thread counts), and the bare forwarding view (bench/bare/) under the gateway's gunicorn
settings."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.servers import free_port, serving

METRICS_TOKEN = "bench-scrape"
GRANIAN_RESPAWN_INTERVAL_S = "20"
GUNICORN = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "config.wsgi"]


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen

    def reload(self) -> None:
        """SIGHUP to the master: both servers replace every worker, gracefully."""
        os.kill(self.process.pid, signal.SIGHUP)

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def gc_pauses(self) -> dict:
        """The workers' garbage-collector pauses so far (gateway/metrics/gc_pauses.py): the
        longest, in ms, and how many collections of each generation."""
        time.sleep(1.5)  # each worker moves its pauses into the metrics once a second
        request = urllib.request.Request(self.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
        longest = [s.value for s in families["gateway_gc_pause_max_seconds"].samples]
        counts = {
            s.labels["generation"]: int(s.value)
            for s in families["gateway_gc_pause_seconds"].samples
            if s.name.endswith("_count")
        }
        return {"max_gc_pause_ms": max(longest, default=0.0) * 1000, "collections": counts}


@contextmanager
def gateway(env: dict, server: str = "gunicorn", timeout_s: float = 180):
    """The gateway on a free port until the block ends, with its workers' models loaded."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-prometheus-") as metrics_dir:
        env = {**env, "GATEWAY_METRICS_TOKEN": METRICS_TOKEN, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        if server == "gunicorn":
            command = GUNICORN
            env["BIND"] = f"127.0.0.1:{port}"
        elif server == "granian":
            command = _granian(port, env)
        else:
            raise ValueError(f"BENCH_SERVER must be gunicorn or granian, not {server!r}")
        base = f"http://127.0.0.1:{port}"
        with _process_group(command, env, base + "/ready", timeout_s) as process:
            yield Server(base, port, process)


def _granian(port: int, env: dict) -> list[str]:
    """granian with gunicorn.conf.py's counts: WEB_WORKERS processes of WEB_THREADS threads."""
    workers = env.get("WEB_WORKERS") or os.environ.get("WEB_WORKERS", "2")
    threads = env.get("WEB_THREADS") or os.environ.get("WEB_THREADS", "160")
    command = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--factory", "bench.granian_app:application",
        "--host", "127.0.0.1", "--port", str(port), "--workers", workers, "--blocking-threads", threads,
        "--http", "1", "--no-ws", "--log-level", "warning", "--respawn-failed-workers",
        # gunicorn.conf.py's graceful_timeout
        "--workers-kill-timeout", "30",
        # On a reload or at the end of a worker's lifetime granian starts the new worker, waits
        # this long, then stops the old one: it must outlast a worker's start (the models'
        # warm-up), or no worker accepts in between and connections fail.
        "--respawn-interval", GRANIAN_RESPAWN_INTERVAL_S,
    ]  # fmt: skip
    if lifetime := env.get("GRANIAN_WORKERS_LIFETIME"):
        command += ["--workers-lifetime", lifetime]
    return command


@contextmanager
def bare(upstream_url: str, timeout_s: float = 60):
    """bench/bare/ under gunicorn with the gateway's settings, forwarding to `upstream_url`."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--config", "bench/bare/gunicorn.conf.py", "bench.bare.wsgi"]
    env = {
        "BIND": f"127.0.0.1:{port}",
        "DJANGO_SETTINGS_MODULE": "bench.bare.settings",
        "BARE_UPSTREAM_URL": upstream_url,
    }
    base = f"http://127.0.0.1:{port}"
    with _process_group(command, env, base + "/ready", timeout_s) as process:
        yield Server(base, port, process)


@contextmanager
def _process_group(command: list[str], env: dict, ready_url: str, timeout_s: float):
    """`serving` in a process group of its own, killed whole at the end: a master killed after
    the stop's grace period (granian's waits for its workers) would leave its workers behind."""
    process = None
    try:
        with serving(command, env, ready_url, timeout_s, own_process_group=True) as process:
            yield process
    finally:
        if process is not None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
