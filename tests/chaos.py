"""Faults injected under load, and what they cost: the harness of `make chaos` (scripts/chaos.py)
and of the slow tests in tests/test_chaos.py (docs/reliability.md).

The gateway runs as production does (gunicorn, gunicorn.conf.py) on wrk's steady load. The
shared PostgreSQL and Redis are never stopped: the gateway reaches PostgreSQL through
`TcpProxy`, a socket proxy this harness controls (refusing new connections and cutting the
open ones is what a stopped PostgreSQL looks like from the gateway), and Redis is a private
redis-server on a free port (`PrivateRedis`) that is really restarted. The upstream is the
stand-in provider (tests/standin_upstream.py) in this process.

Each fault has its own API key and its own wrk run (tests/chaos.lua, which lists every answer
with its status, Retry-After and request id), so that afterwards the request log can be checked
against exactly the answers the load generator received.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tests.servers import ROOT, free_port, gunicorn_node, http

CHAT_MODEL = "chaos-chat"
UNLIMITED = {"requests_per_minute": 2_000_000_000, "tokens_per_minute": 2_000_000_000, "max_in_flight": 1_000_000}
BUDGET_USD = Decimal("1000")
# A fault whose recovery takes longer than this is reported as not recovered.
RECOVERY_LIMIT_S = 120.0


class TcpProxy:
    """A TCP proxy on a free port to `target_port`: `refuse()` closes the listening socket (new
    connections are refused) and resets every open connection, `restore()` listens again."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    def start(self) -> "TcpProxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(512)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def refuse(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
        with self._lock:
            cut, self._open = self._open, set()
        for sock in cut:
            with suppress(OSError):  # its pump may have closed it meanwhile
                # SO_LINGER 0: close sends a reset, as a server whose process is gone does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    restore = start

    def stop(self) -> None:
        self.refuse()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # refused meanwhile
                    client.close()
                    server.close()
                    continue
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._open.discard(sock)
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            source.close()  # the other direction's pump closes the other socket


class PrivateRedis:
    """A redis-server of this harness's own, keeping nothing on disk, which it really restarts."""

    def __init__(self, scratch: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._scratch = scratch
        self._process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = open(self._scratch / f"redis-{self.port}.log", "ab")  # noqa: SIM115 (the server keeps it)
        self._process = subprocess.Popen([*command, "--dir", str(self._scratch)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@dataclass
class Answers:
    """What wrk received (tests/chaos.lua)."""

    statuses: Counter = field(default_factory=Counter)
    ok_ids: set[str] = field(default_factory=set)
    all_ids: set[str] = field(default_factory=set)
    refused_without_retry_after: int = 0  # 503s and 429s without Retry-After
    socket_errors: int = 0

    @classmethod
    def read(cls, path: Path, wrk_output: str) -> "Answers":
        answers = cls()
        for line in path.read_text().splitlines():
            status, retry_after, request_id = line.split()
            answers.statuses[int(status)] += 1
            if request_id != "-":
                answers.all_ids.add(request_id)
                if 200 <= int(status) < 300:
                    answers.ok_ids.add(request_id)
            if int(status) in (429, 503) and retry_after == "0":
                answers.refused_without_retry_after += 1
        stats = json.loads(re.search(r"WRK_JSON (\{.*\})", wrk_output).group(1))
        answers.socket_errors = stats["socket_errors"] + stats["timeouts"]
        return answers


@dataclass
class Outcome:
    fault: str
    requests: int
    errors: dict[int, int]
    socket_errors: int
    rows_lost: int
    rows_duplicated: int
    rows_unanswered: int
    refused_without_retry_after: int
    recover_s: float
    budget_drift_usd: Decimal
    note: str = ""

    @property
    def clean(self) -> bool:
        return (
            self.rows_lost == 0
            and self.rows_duplicated == 0
            and self.errors.get(500, 0) == 0
            and self.refused_without_retry_after == 0
        )


HEADER = ("fault", "requests", "errors by status", "rows lost", "rows duplicated", "seconds to recover")


def table(outcomes: list[Outcome]) -> str:
    """The chaos table (docs/reliability.md), in Markdown."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for o in outcomes:
        errors = ", ".join(f"{status}: {count}" for status, count in sorted(o.errors.items())) or "none"
        if o.socket_errors:
            errors += f", connection errors: {o.socket_errors}"
        cells = (o.fault, str(o.requests), errors, str(o.rows_lost), str(o.rows_duplicated), f"{o.recover_s:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class Chaos:
    """One gateway node (gunicorn, WEB_WORKERS processes) behind the proxy and the private Redis,
    with the stand-in upstream; `run_fault` loads it with wrk while a fault is injected."""

    def __init__(self, database_url: str, scratch: Path, *, connections: int = 16, env: dict | None = None):
        self.database_url = database_url
        self.scratch = scratch
        self.connections = connections
        self.extra_env = env or {}
        self.outcomes: list[Outcome] = []

    @contextmanager
    def running(self, redis: PrivateRedis | None = None):
        """Proxy, Redis (`redis` if the caller started it), stand-in and gateway, until the block ends."""
        from django.test.utils import override_settings

        from tests.standin_upstream import StandinUpstream

        with ExitStack() as stack:
            database = re.match(r"postgres://([^@]+)@([^:/]+):(\d+)/(.+)", self.database_url)
            assert database, self.database_url
            user, host, port, name = database.groups()
            self.proxy = TcpProxy(int(port), host).start()
            stack.callback(self.proxy.stop)
            if redis is None:
                redis = PrivateRedis(self.scratch).start()
                stack.callback(redis.stop)
            self.redis = redis
            self.standin = StandinUpstream().start()
            stack.callback(self.standin.stop)
            caches = {alias: {**_redis_cache(redis.url)} for alias in ("default", "responses")}
            stack.enter_context(override_settings(CACHES=caches))
            self._setup_rows()
            self.env = {
                "DATABASE_URL": f"postgres://{user}@127.0.0.1:{self.proxy.port}/{name}",
                "REDIS_URL": redis.url,
                "GATEWAY_REQUEST_LOG_BUFFER_S": "0.05",
                "GATEWAY_REQUEST_SPOOL_DIR": str(self.scratch / "spool"),
                "GATEWAY_RESPONSE_CACHE": "false",
                "GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS": "0",
                "STANDIN_API_KEY": "sk-standin-secret",
                "WEB_WORKERS": "2",
                "WEB_THREADS": "32",
                "TORCH_THREADS": "1",
                # Faults end within seconds here: a breaker probes again after 2 s, a request
                # that needs the database gives up after 3 s.
                "BREAKER_COOLDOWN_S": "2",
                "DB_POOL_TIMEOUT": "3",
                "DB_CONNECT_TIMEOUT": "2",
                "UPSTREAM_BACKOFF_INITIAL_S": "0.05",
                "UPSTREAM_BACKOFF_MAX_S": "0.2",
                **self.extra_env,
            }
            self.node = stack.enter_context(gunicorn_node(self.env))
            self.probe_key = self._key("probe")
            self._bodies = self.scratch / "chat-bodies"
            bodies = [{"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"q {i}"}]} for i in range(500)]
            self._bodies.write_text("".join(json.dumps(body) + "\n" for body in bodies))
            self.wait_recovered(time.monotonic())
            yield self

    # --- faults ---

    def postgres_outage(self, seconds: float) -> Outcome:
        return self.run_fault(f"PostgreSQL stopped {seconds:g} s", self.proxy.refuse, seconds, self.proxy.restore)

    def redis_restart(self, seconds: float = 2.0) -> Outcome:
        return self.run_fault("Redis restarted", self.redis.stop, seconds, self.redis.start)

    def upstream_errors(self, seconds: float) -> Outcome:
        def fail():
            self.standin.unscripted = {"status": 500}

        return self.run_fault(f"upstream 500s {seconds:g} s", fail, seconds, self._upstream_ok)

    def upstream_timeouts(self, seconds: float) -> Outcome:
        def hang():
            self.standin.unscripted = {"delay": 5}  # the provider's timeout is 1 s

        return self.run_fault(f"upstream timing out {seconds:g} s", hang, seconds, self._upstream_ok)

    def web_worker_killed(self) -> Outcome:
        def kill():
            workers = _children(self.node.process.pid)
            assert workers, "no gunicorn worker to kill"
            os.kill(workers[0], signal.SIGKILL)

        return self.run_fault("web worker SIGKILL", kill, 0, lambda: None)

    def celery_worker_killed(self, items: int = 200) -> Outcome:
        """A batch job's worker SIGKILLed mid-job (main process and pool children), a second one
        started: the job completes with every item done, and logged, exactly once."""
        from tests.servers import celery_worker

        _, batch_key = self._key("batch")
        env = {
            **self.env,
            "WORKER_CONCURRENCY": "1",
            # A dead worker's chunks go to the next worker after 5 s instead of 5 minutes.
            "CELERY_VISIBILITY_TIMEOUT_S": "5",
            "CELERY_UNACKED_RESTORE_INTERVAL_S": "1",
            "GATEWAY_BATCH_STALLED_AFTER_S": "10",
            "GATEWAY_BATCH_STALL_CHECK_S": "1",
        }
        job: dict = {}
        with ExitStack() as workers:
            first = workers.enter_context(celery_worker(env, self.scratch / "worker-1.log"))

            def kill_mid_job():
                texts = [f"review {i}: {'wonderful' if i % 2 == 0 else 'terrible'}" for i in range(items)]
                status, _, answer = http(
                    "POST", self.node.url + "/api/v1/batches", {"inputs": texts}, {"X-API-Key": batch_key}
                )
                assert status == 202, answer
                job["id"] = answer["id"]
                _wait(lambda: _job(job["id"]).processed_items > 0, "the batch job to start")
                first.kill()

            def second_worker():
                workers.enter_context(celery_worker(env, self.scratch / "worker-2.log"))

            outcome = self.run_fault(
                "Celery worker SIGKILL mid-batch",
                kill_mid_job,
                0,
                second_worker,
                until=lambda: _job(job["id"]).status == "completed",
            )
        outcome.note = _batch_note(job["id"], items)
        return outcome

    def run_fault(
        self, name: str, inject, hold_s: float, restore, *, lead_s: float = 2.0, tail_s: float = 1.0, until=None
    ):
        """wrk for lead_s + the fault + recovery + tail_s on a key of the fault's own; then the log
        is checked against wrk's answers. Recovery: until a billable request is answered, /ready
        says ready, nothing waits in the spool, and `until()` holds."""
        key, plaintext = self._key(name)
        answers_file = self.scratch / f"answers-{key.pk}"
        wrk = self._wrk(plaintext, answers_file)
        time.sleep(lead_s)
        inject()
        time.sleep(hold_s)
        restore()
        ended = time.monotonic()
        recover_s = self.wait_recovered(ended)
        if until is not None:
            _wait(until, f"{name}: recovery")
            recover_s = time.monotonic() - ended
        time.sleep(tail_s)
        wrk_output = self._stop_wrk(wrk, answers_file)
        answers = Answers.read(answers_file, wrk_output)
        self.wait_recovered(time.monotonic())  # the spool drained since the load stopped
        outcome = self.verify(name, key, answers, recover_s)
        self.outcomes.append(outcome)
        return outcome

    # --- checks ---

    def verify(self, name: str, key, answers: Answers, recover_s: float) -> Outcome:
        from gateway.limits import budgets, counters
        from gateway.models import RequestLog

        logged = Counter(str(i) for i in RequestLog.objects.filter(api_key=key).values_list("request_id", flat=True))
        start, end = budgets.period_bounds(key.budget_period)
        (counted,) = counters.read([budgets._counter(key, start)])
        drift = budgets.to_usd(counted or 0) - budgets.spent_in_log(key, start, end)
        return Outcome(
            fault=name,
            requests=sum(answers.statuses.values()) + answers.socket_errors,
            errors={status: n for status, n in answers.statuses.items() if status >= 400},
            socket_errors=answers.socket_errors,
            rows_lost=len(answers.ok_ids - set(logged)),
            rows_duplicated=sum(n - 1 for n in logged.values()),
            rows_unanswered=len(set(logged) - answers.all_ids),
            refused_without_retry_after=answers.refused_without_retry_after,
            recover_s=recover_s,
            budget_drift_usd=drift,
        )

    # --- internals ---

    def _setup_rows(self) -> None:
        from inference.models import Backend, ModelVersion, Provider, Status, Task

        provider, _ = Provider.objects.update_or_create(
            name="chaos-standin",
            defaults={"base_url": self.standin.url, "timeout_s": 1, "max_retries": 1, "api_key_env": "STANDIN_API_KEY"},
        )
        version, _ = ModelVersion.objects.update_or_create(
            name=CHAT_MODEL,
            version="1",
            defaults={
                "task": Task.CHAT,
                "backend": Backend.OPENAI,
                "provider": provider,
                "upstream_model": CHAT_MODEL,
                "input_cost_per_1k": Decimal("0.001"),
                "output_cost_per_1k": Decimal("0.002"),
            },
        )
        if version.status != Status.PRODUCTION:
            version.promote()

    def _key(self, name: str):
        from gateway.models import APIKey

        return APIKey.objects.create_key(name=f"chaos {name}"[:100], budget_usd=BUDGET_USD, **UNLIMITED)

    def _upstream_ok(self) -> None:
        self.standin.unscripted = "ok"

    def _wrk(self, key: str, answers_file: Path) -> subprocess.Popen:
        threads = 2
        command = [
            "wrk", f"-t{threads}", f"-c{self.connections}", f"-d{int(RECOVERY_LIMIT_S) * 3}s", "--timeout", "15s",
            "-s", str(ROOT / "tests/chaos.lua"), self.node.url + "/v1/chat/completions", "--", str(self._bodies),
        ]  # fmt: skip
        env = {
            **os.environ,
            "WRK_API_KEY": key,
            "WRK_THREADS": str(threads),
            "WRK_ANSWERS_FILE": str(answers_file),
            "WRK_STOP_FILE": str(answers_file.with_suffix(".stop")),
        }
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)

    def _stop_wrk(self, wrk: subprocess.Popen, answers_file: Path) -> str:
        """Billable requests end first (chaos.lua turns to /health), then wrk is stopped: the
        answers it abandons then are /health ones, which leave no log row."""
        answers_file.with_suffix(".stop").touch()
        time.sleep(3)  # what was sent before finishes: the provider's timeout is 1 s
        wrk.send_signal(signal.SIGINT)  # wrk reports (done()) and exits
        return wrk.communicate(timeout=30)[0]

    def wait_recovered(self, since: float | None = None) -> float:
        """Seconds from `since` until a billable request is answered 200, /ready says ready and
        no log row waits in the spool."""
        since = time.monotonic() if since is None else since
        _, plaintext = self.probe_key if hasattr(self, "probe_key") else (None, None)
        body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "probe"}]}
        while time.monotonic() - since < RECOVERY_LIMIT_S:
            try:
                ready = http("GET", self.node.url + "/ready", timeout=5)[2]
                answered = plaintext is None or (
                    http("POST", self.node.url + "/v1/chat/completions", body, {"X-API-Key": plaintext}, timeout=10)[0]
                    == 200
                )
            except OSError:
                ready, answered = None, False
            if (
                answered
                and ready
                and ready["status"] == "ready"
                and ready["checks"]["request_log"]["spool_pending_bytes"] == 0
            ):
                return time.monotonic() - since
            time.sleep(0.1)
        raise AssertionError(f"not recovered within {RECOVERY_LIMIT_S:g} s")


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + RECOVERY_LIMIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _job(job_id):
    from inference.batches.models import BatchJob

    return BatchJob.objects.get(pk=job_id)


def _batch_note(job_id, items: int) -> str:
    """Whether every accepted item was done exactly once: stored once, and logged once."""
    from django.db.models import Count

    from gateway.models import RequestLog
    from inference.batches.models import BatchItem, ItemStatus

    done = BatchItem.objects.filter(job_id=job_id, status=ItemStatus.SUCCEEDED)
    item_ids = {str(i) for i in done.values_list("request_id", flat=True)}
    rows = RequestLog.objects.filter(request_id__in=item_ids).values("request_id").annotate(n=Count("id"))
    once = sum(1 for row in rows if row["n"] == 1)
    return f"batch of {items} items: {len(item_ids)} done, {once} logged exactly once"


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _redis_cache(url: str) -> dict:
    from django.conf import settings

    return {**settings.CACHES["default"], "LOCATION": url}
