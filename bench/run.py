"""`make bench`: the gateway under load, started the way production runs it.

Runs the gateway under gunicorn (gunicorn.conf.py, the `make run` settings; BENCH_SERVER=granian
for granian) on PostgreSQL and Redis, loads it with wrk from a separate process, and reports per
scenario requests/s, p50, p99 and errors, plus ratios with their targets (docs/benchmarks.md).

A ratio's two sides run alternately, each on a fresh server (A B A B, BENCH_REPEATS times
each, default 2), and each side's figure is the median of its runs: a server's figures move
with its age, so two scenarios run one after the other on one server are not comparable.
Scenario groups, in order: classify, chat, slow, soak, scale_out, abuse; BENCH_ONLY names some
of them (comma-separated), or `servers`: gunicorn and granian alternated on the same scenarios
(docs/decisions/0080-wsgi-server.md), which only runs when named. Writes
bench/results/latest.json and prints a table.
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(
    DJANGO_SETTINGS_MODULE="tests.settings",
    DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/gateway_bench"),
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
)
# SST-2's train.tsv, which lives outside the repository: BENCH_SENTENCES, or SHARED_DATA_DIR/sst2/train.tsv.
SENTENCES = os.environ.get("BENCH_SENTENCES") or (
    os.path.join(os.environ["SHARED_DATA_DIR"], "sst2", "train.tsv") if os.environ.get("SHARED_DATA_DIR") else ""
)
REPEATS = int(os.environ.get("BENCH_REPEATS", "2"))
SOAK_SECONDS = int(os.environ.get("BENCH_SOAK_SECONDS", "120"))
# How long the server comparison loads a server that recycles its workers: granian's shortest
# worker lifetime is 60 s, and it replaces its workers one at a time, 20 s apart.
RECYCLE_SECONDS = int(os.environ.get("BENCH_RECYCLE_SECONDS", "110"))
SERVER = os.environ.get("BENCH_SERVER", "gunicorn")
GROUPS = ("classify", "chat", "slow", "soak", "scale_out", "abuse")
ONLY = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
SLICE = 5000  # sentences a classification scenario draws from: more than one run can send
IDEAL_SLOW = 256 / 0.5  # 256 clients on a 500 ms upstream
# The bench's own keys are served whatever the load: the default limits would refuse most of it.
UNLIMITED = {"requests_per_minute": 2_000_000_000, "tokens_per_minute": 2_000_000_000, "max_in_flight": 1_000_000}
# Each scenario's load comes from one address, which the per-address ceiling would refuse; the
# abuse scenario gives its clients addresses of their own, as a trusted proxy reports them.
ONE_ADDRESS = {"GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS": "0"}
CHAT = "/v1/chat/completions"
MODES = ("on", "off")  # the content filter's, in the stream scenarios
PREDICT = "/api/v1/predict"

import django  # noqa: E402

from bench import load  # noqa: E402
from bench.load import median_of, wrk  # noqa: E402
from bench.servers import Server, bare, gateway  # noqa: E402
from tests.servers import free_port, haproxy, http, serving  # noqa: E402

_STARTED = time.monotonic()


def main() -> None:
    if not os.path.isfile(SENTENCES):
        sys.exit("Set SHARED_DATA_DIR to the directory holding sst2/train.tsv (or BENCH_SENTENCES to the file).")
    unknown = set(ONLY) - {*GROUPS, "servers"}
    if unknown or SERVER not in ("gunicorn", "granian"):
        sys.exit(f"BENCH_ONLY takes {', '.join((*GROUPS, 'servers'))}; BENCH_SERVER gunicorn or granian.")
    # Stopped from outside (a timeout), still stop every server it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    _create_database()
    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("bootstrap", verbosity=0)
    cache.clear()
    results: dict = {
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "seconds": load.SECONDS,
        "repeats": REPEATS,
        "server": SERVER,
        "scenarios": {},
    }
    groups = [group for group in (*GROUPS, "servers") if group in ONLY] if ONLY else list(GROUPS)
    slow_port, fast_port = free_port(), free_port()
    standin = [sys.executable, "-m", "tests.standin_upstream", "--port"]
    with (
        serving([*standin, str(slow_port), "--delay", "0.5"], {}, f"http://127.0.0.1:{slow_port}/v1/models"),
        serving([*standin, str(fast_port)], {}, f"http://127.0.0.1:{fast_port}/v1/models"),
        tempfile.TemporaryDirectory() as scratch_dir,
    ):
        scratch = Path(scratch_dir)
        # The sentences every classification scenario draws from, in file order; the response
        # cache is emptied before each scenario, so none is answered from it.
        served = _sentences()[:SLICE]
        bench = SimpleNamespace(
            key=_setup_rows(slow_port, fast_port),
            served=served,
            scratch=scratch,
            slow_url=f"http://127.0.0.1:{slow_port}{CHAT}",
            fast_url=f"http://127.0.0.1:{fast_port}{CHAT}",
            classify=load.classify_bodies(scratch / "classify", served),
            chat_slow=load.chat_bodies(scratch / "chat-slow", "bench-slow"),
            chat_fast=load.chat_bodies(scratch / "chat-fast", "bench-fast"),
            streams={mode: load.stream_bodies(scratch / f"stream-{mode}", f"bench-stream-{mode}") for mode in MODES},
        )
        for number, group in enumerate(groups, 1):
            _progress(f"== {group} ({number} of {len(groups)})")
            GROUP_RUNNERS[group](bench, results)

    results["ratios"] = _ratios(results)
    out = ROOT / "bench/results/latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)
    print(f"\nwritten to {out.relative_to(ROOT)} in {time.monotonic() - _STARTED:.0f} s")


def _progress(text: str) -> None:
    print(f"[{time.monotonic() - _STARTED:5.0f} s] {text}", flush=True)


def _alternate(sides: dict, results: dict) -> None:
    """Each side (a callable given the repeat's index that starts its own fresh server and
    returns its scenarios' figures) BENCH_REPEATS times, in turn: A B A B. Each scenario's
    figure is the median of its runs."""
    runs: dict[str, list[dict]] = defaultdict(list)
    for repeat in range(REPEATS):
        for side, measure in sides.items():
            _progress(f"{side}: run {repeat + 1} of {REPEATS}")
            for scenario, result in measure(repeat).items():
                runs[scenario].append(result)
    results["scenarios"].update({scenario: median_of(figures) for scenario, figures in runs.items()})


def _gateway(env: dict, server: str | None = None):
    return gateway(env, server or SERVER)


# --- the scenario groups ---


def _classify(bench, results) -> None:
    """Gateway classification at 32 clients with the request log on and off, and the raw model
    in-process on batches split by length (the ceiling), over the same sentences."""
    from django.core.cache import cache

    classify, reference = _raw_model(bench.served)
    results["raw_model"] = reference
    ceiling_runs = []

    def log_on(repeat: int) -> dict:
        with _gateway(ONE_ADDRESS) as server:
            _warm(server.url, bench.key)
            cache.clear()
            figures = {"classify_c32": wrk(server.url + PREDICT, bench.classify, bench.key, 32)}
            _set_batch_size(1)  # for reference: the same server without batching
            try:
                _warm(server.url, bench.key)
                cache.clear()
                figures["classify_unbatched_c32"] = wrk(server.url + PREDICT, bench.classify, bench.key, 32)
            finally:
                _set_batch_size(32)
        return figures

    def log_off(repeat: int) -> dict:
        with _gateway({**ONE_ADDRESS, "GATEWAY_REQUEST_LOG_ENABLED": "false"}) as server:
            _warm(server.url, bench.key)
            cache.clear()
            return {"classify_c32_log_off": wrk(server.url + PREDICT, bench.classify, bench.key, 32)}

    def torch_ceiling(repeat: int) -> dict:
        ceiling_runs.append(classify())
        print(f"    {ceiling_runs[-1]['sentences_per_s']:.1f} sentences/s", flush=True)
        return {}

    sides = {"gateway, request log on": log_on, "gateway, request log off": log_off, "PyTorch fp32": torch_ceiling}
    _alternate(sides, results)
    results["raw_model"]["by_length"] = {
        "sentences_per_s": statistics.median(run["sentences_per_s"] for run in ceiling_runs),
        "runs_sentences_per_s": [round(run["sentences_per_s"], 1) for run in ceiling_runs],
    }


def _chat(bench, results) -> None:
    """Chat on the fast stand-in through the gateway, through the bare forwarding view
    (bench/bare/) and straight at the stand-in; and streams with the content filter on and off."""

    def through_gateway(repeat: int) -> dict:
        with _gateway(ONE_ADDRESS) as server:
            _warm(server.url, bench.key)
            figures = {
                "chat_fast_c1": wrk(server.url + CHAT, bench.chat_fast, bench.key, 1, threads=1),
                "chat_fast_c32": wrk(server.url + CHAT, bench.chat_fast, bench.key, 32),
            }
            # Each mode goes first in every other run.
            for mode in MODES if repeat % 2 else reversed(MODES):
                scenario = f"chat_stream_filter_{mode}_c16"
                figures[scenario] = wrk(server.url + CHAT, bench.streams[mode], bench.key, 16)
        return figures

    def through_bare_django(repeat: int) -> dict:
        with bare(bench.fast_url) as server:
            hello = {"model": "bench-fast", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(20):
                http("POST", server.url + CHAT, hello)
            return {
                "bare_django_fast_c1": wrk(server.url + CHAT, bench.chat_fast, bench.key, 1, threads=1),
                "bare_django_fast_c32": wrk(server.url + CHAT, bench.chat_fast, bench.key, 32),
            }

    def straight_at_the_standin(repeat: int) -> dict:
        return {"standin_fast_direct_c1": wrk(bench.fast_url, bench.chat_fast, bench.key, 1, threads=1)}

    _alternate(
        {"gateway": through_gateway, "bare Django": through_bare_django, "stand-in direct": straight_at_the_standin},
        results,
    )


def _slow(bench, results) -> None:
    """256 clients on the 500 ms stand-in, with the workers' longest garbage-collector pause;
    the stand-in loaded directly, for reference."""
    gc_runs = []

    def through_gateway(repeat: int) -> dict:
        with _gateway(ONE_ADDRESS) as server:
            _warm(server.url, bench.key)
            figures = {"chat_slow_c256": wrk(server.url + CHAT, bench.chat_slow, bench.key, 256)}
            gc_runs.append(_gc(server))
        return figures

    def straight_at_the_standin(repeat: int) -> dict:
        return {"standin_slow_direct_c256": wrk(bench.slow_url, bench.chat_slow, bench.key, 256)}

    _alternate({"gateway": through_gateway, "stand-in direct": straight_at_the_standin}, results)
    results["gc_slow_c256"] = {
        "max_gc_pause_ms": max(run["max_gc_pause_ms"] for run in gc_runs),
        "runs": gc_runs,
    }


def _soak(bench, results) -> None:
    """The 256-client slow scenario for BENCH_SOAK_SECONDS on one fresh server: throughput of
    its last 30 s over its first 30 s (a third of the soak each when it is shorter than 90 s),
    and the longest collector pause over the whole soak, older generations included."""
    window = min(30, SOAK_SECONDS // 3)
    middle = SOAK_SECONDS - 2 * window
    with _gateway(ONE_ADDRESS) as server:
        _warm(server.url, bench.key)
        _progress(f"soak: {SOAK_SECONDS} s at 256 clients (windows of {window} s)")
        first = wrk(server.url + CHAT, bench.chat_slow, bench.key, 256, seconds=window)
        if middle:
            wrk(server.url + CHAT, bench.chat_slow, bench.key, 256, seconds=middle)
        last = wrk(server.url + CHAT, bench.chat_slow, bench.key, 256, seconds=window)
        gc = _gc(server)
    results["soak"] = {"seconds": SOAK_SECONDS, "window_s": window, "first": first, "last": last, **gc}


def _scale_out(bench, results) -> None:
    """The classify and slow-chat scenarios through HAProxy (as tests/test_scale_out.py runs it:
    round robin, /ready checks) in front of one node, then of two: separate gateway servers
    sharing PostgreSQL and Redis, alternated."""
    from django.core.cache import cache

    def nodes(count: int, label: str):
        def measure(repeat: int) -> dict:
            with ExitStack() as stack:
                servers = {f"node{i}": stack.enter_context(_gateway({})) for i in range(count)}
                balancer = stack.enter_context(haproxy({name: node.port for name, node in servers.items()}))
                for node in servers.values():
                    _warm(node.url, bench.key)
                cache.clear()
                return {
                    f"classify_c32_lb_{label}": wrk(balancer.url + PREDICT, bench.classify, bench.key, 32),
                    f"chat_slow_c256_lb_{label}": wrk(balancer.url + CHAT, bench.chat_slow, bench.key, 256),
                }

        return measure

    _alternate({"one node": nodes(1, "1node"), "two nodes": nodes(2, "2nodes")}, results)


def _abuse(bench, results) -> None:
    """One legitimate key at 32 clients, alone and then while 128 connections send junk as fast
    as they can: guessed and malformed keys, another tenant's key with hostile fields, JSON
    nested 20,000 deep, bodies over the size limit, an unknown method (bench/wrk/junk.lua).
    Each side has addresses of its own behind a trusted proxy, as in production behind a load
    balancer. The key calls an LLM (the 500 ms stand-in), then, for reference, classifies on the
    local model, which competes with the junk for the same cores. Every answer the legitimate
    client received must be in the request log, once. Alone and under attack share one server
    (the junk's per-address state is the point), measured one after the other."""
    from django.core.cache import cache

    from gateway.models import APIKey, RequestLog

    scenarios = results["scenarios"]
    legit = APIKey.objects.create_key(name=f"bench-legit-{int(time.time())}", **UNLIMITED)[1]
    attacker = APIKey.objects.create_key(name=f"bench-attacker-{int(time.time())}")[1]  # the default limits
    # The legitimate client alone sends more than the default 6,000 requests a minute per address.
    env = {"GATEWAY_TRUST_X_FORWARDED_FOR": "true", "GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS": "600000"}
    answered: list[str] = []

    def legit_load(name: str, path: str, bodies: Path) -> None:
        ids = bench.scratch / f"{name}.ids"
        wrk_env = {"WRK_FORWARDED_FOR": "203.0.113.10", "WRK_IDS_FILE": str(ids)}
        scenarios[name] = wrk(server.url + path, bodies, legit, 32, env=wrk_env)
        answered.extend(ids.read_text().split())

    with _gateway(env) as server:
        _warm(server.url, legit)
        for workload, path, bodies in (("chat", CHAT, bench.chat_slow), ("classify", PREDICT, bench.classify)):
            cache.clear()
            legit_load(f"legit_{workload}_alone_c32", path, bodies)
            cache.clear()
            junk_command = ["wrk", "-t2", "-c128", f"-d{load.SECONDS + 5}s", "--timeout", "10s"]
            junk = subprocess.Popen(
                [*junk_command, "-s", str(ROOT / "bench/wrk/junk.lua"), server.url],
                env={**os.environ, "WRK_ATTACKER_KEY": attacker},
                stdout=subprocess.PIPE,
                text=True,
            )
            # Measured once the flood is in its steady state: each attacking address has used up
            # its failed authentications for the minute (until then each junk request is looked up).
            time.sleep(3)
            legit_load(f"legit_{workload}_under_attack_c32", path, bodies)
            stats = json.loads(re.search(r"WRK_JSON (\{.*\})", junk.communicate()[0]).group(1))
            rate = stats["requests"] / (stats["duration_us"] / 1e6)
            scenarios[f"junk_during_{workload}_c128"] = {"connections": 128, "requests_per_s": rate}
            print(f"    junk c=128: {rate:.1f} req/s", flush=True)
        time.sleep(2)  # the web processes' log writers flush every GATEWAY_REQUEST_LOG_BUFFER_S
    logged = sum(
        RequestLog.objects.filter(request_id__in=answered[start : start + 5000]).count()
        for start in range(0, len(answered), 5000)
    )
    results["abuse"] = {
        "legit_answers": len(answered),
        "legit_answers_logged": logged,
        "legit_logged_exactly_once": logged == len(answered) == len(set(answered)),
    }


def _servers(bench, results) -> None:
    """gunicorn and granian, alternated, each on fresh servers with the same worker and thread
    counts: chat at 1 and 32 clients on the fast stand-in, 256 clients on the slow one (with the
    longest collector pause), a graceful reload (SIGHUP) under 32 clients, and then, on another
    fresh server, worker recycling under 32 clients for BENCH_RECYCLE_SECONDS (gunicorn:
    WEB_MAX_REQUESTS=3000; granian: its shortest worker lifetime, 60 s)."""
    reload_seconds = max(load.SECONDS, 60)  # granian replaces its two workers one at a time, 20 s apart
    recycling = {"gunicorn": {"WEB_MAX_REQUESTS": "3000"}, "granian": {"GRANIAN_WORKERS_LIFETIME": "60"}}
    extra: dict[str, list] = defaultdict(list)

    def side(name: str):
        def measure(repeat: int) -> dict:
            with _gateway(ONE_ADDRESS, name) as server:
                _warm(server.url, bench.key)
                figures = {
                    f"{name}_chat_fast_c1": wrk(server.url + CHAT, bench.chat_fast, bench.key, 1, threads=1),
                    f"{name}_chat_fast_c32": wrk(server.url + CHAT, bench.chat_fast, bench.key, 32),
                    f"{name}_chat_slow_c256": wrk(server.url + CHAT, bench.chat_slow, bench.key, 256),
                }
                extra[f"{name}_gc"].append(_gc(server))
                _progress(f"{name}: SIGHUP under 32 clients ({reload_seconds} s)")
                figures[f"{name}_reload_c32"], replaced = _under_load(server, server.reload, bench, reload_seconds)
                extra[f"{name}_reload_replaced_every_worker"].append(replaced)
            with _gateway({**ONE_ADDRESS, **recycling[name]}, name) as server:
                _warm(server.url, bench.key)
                _progress(f"{name}: recycling workers under 32 clients ({RECYCLE_SECONDS} s)")
                figures[f"{name}_recycle_c32"], replaced = _under_load(server, None, bench, RECYCLE_SECONDS)
                extra[f"{name}_recycle_replaced_every_worker"].append(replaced)
            return figures

        return measure

    _alternate({"gunicorn": side("gunicorn"), "granian": side("granian")}, results)
    results["servers"] = dict(extra)


def _under_load(server: Server, action, bench, seconds: int) -> tuple[dict, bool]:
    """Chat at 32 clients on the fast stand-in for `seconds`, `action` 2 s in; whether every
    worker that served at the start had been replaced by the end."""
    before = server.worker_pids()
    running = load.start(server.url + CHAT, bench.chat_fast, bench.key, 32, seconds=seconds)
    time.sleep(2)
    if action:
        action()
    figures = load.finish(running)
    return figures, not (before & server.worker_pids())


# --- set-up and helpers ---


def _create_database() -> None:
    import psycopg

    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect("postgres://root@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _sentences() -> list[str]:
    with open(SENTENCES) as lines:
        next(lines)  # header
        return [line.split("\t")[0].strip() for line in lines if line.strip()]


RAW_LABELS = {
    "by_length": "batches of 32 split by length as the batcher does (the ceiling)",
    "file_order": "batches of 32 in file order",
    "batch_1": "one sentence per pass",
}
RAW_BATCHES = 64  # batches of 32 per measurement: ~2,000 sentences


def _raw_model(sentences: list[str]):
    """The production classifier on its PyTorch fp32 runtime (`load_runner`), called in-process
    with all cores: a callable timing batches of 32 split by length (the ceiling, measured
    alternately with the gateway), and for reference batches in file order and one sentence
    per pass, measured once now."""
    import torch

    from inference.backends import load_runner
    from inference.batching import by_length
    from inference.models import ModelVersion, Runtime

    torch.set_num_threads(os.cpu_count() or 1)
    # PyTorch whatever runtime the version serves on: the ceiling stays the same as runtimes change.
    model = load_runner(ModelVersion.objects.get(name="sentiment", status="production"), Runtime.TORCH)
    assert model.runtime == Runtime.TORCH
    model(sentences[:32])  # warm-up

    def timed(passes: list[list[str]]) -> dict:
        started = time.perf_counter()
        for texts in passes:
            model(texts)
        elapsed = time.perf_counter() - started
        count = sum(len(texts) for texts in passes)
        return {"sentences": count, "seconds": elapsed, "sentences_per_s": count / elapsed}

    batches = [sentences[start : start + 32] for start in range(0, len(sentences), 32)][:RAW_BATCHES]
    split = [[item.text for item in group] for batch in batches for group in by_length(
        [SimpleNamespace(text=text) for text in batch])]  # fmt: skip
    _progress("raw model, reference passes")
    reference = {"file_order": timed(batches), "batch_1": timed([[text] for text in sentences[:512]])}
    return (lambda: timed(split)), reference


def _setup_rows(slow_port: int, fast_port: int) -> str:
    from gateway.models import APIKey
    from inference.models import Backend, ModelVersion, Provider, Status, Task

    for name, port in (("bench-slow", slow_port), ("bench-fast", fast_port)):
        provider, _ = Provider.objects.update_or_create(
            name=name, defaults={"base_url": f"http://127.0.0.1:{port}/v1", "timeout_s": 10, "max_retries": 0}
        )
        version, _ = ModelVersion.objects.update_or_create(
            name=name,
            version="1",
            defaults={
                "task": Task.CHAT, "backend": Backend.OPENAI, "provider": provider, "upstream_model": name,
                "input_cost_per_1k": "0.001", "output_cost_per_1k": "0.002",
            },
        )  # fmt: skip
        if version.status != Status.PRODUCTION:
            version.promote()
    # Streams with and without the content filter, on the fast stand-in.
    for mode, content_filter in (("on", "redact"), ("off", "off")):
        version, _ = ModelVersion.objects.update_or_create(
            name=f"bench-stream-{mode}",
            version="1",
            defaults={
                "task": Task.CHAT, "backend": Backend.OPENAI, "provider": Provider.objects.get(name="bench-fast"),
                "upstream_model": f"bench-stream-{mode}", "content_filter": content_filter,
            },
        )  # fmt: skip
        if version.status != Status.PRODUCTION:
            version.promote()
    _set_batch_size(32)
    return APIKey.objects.create_key(name=f"bench-{int(time.time())}", **UNLIMITED)[1]


def _set_batch_size(size: int) -> None:
    from inference.models import ModelVersion

    version = ModelVersion.objects.get(name="sentiment", status="production")
    version.max_batch_size = size
    version.save()  # every worker reloads the version on its next request


def _warm(base: str, key: str) -> None:
    """Each worker loads its models at start; this also reloads edited versions everywhere."""
    for _ in range(20):
        http("POST", base + PREDICT, {"text": "warm up"}, {"X-API-Key": key})


def _gc(server: Server) -> dict:
    pauses = server.gc_pauses()
    print(f"    longest collector pause {pauses['max_gc_pause_ms']:.1f} ms; collections {pauses['collections']}")
    return pauses


GROUP_RUNNERS = {
    "classify": _classify,
    "chat": _chat,
    "slow": _slow,
    "soak": _soak,
    "scale_out": _scale_out,
    "abuse": _abuse,
    "servers": _servers,
}


# --- ratios and the table ---


# Ratios of two scenarios' req/s: (ratio, numerator, denominator).
RATE_RATIOS = (
    ("classify_vs_unbatched", "classify_c32", "classify_unbatched_c32"),
    ("logging_on_vs_off", "classify_c32", "classify_c32_log_off"),
    ("chat_vs_bare_django", "chat_fast_c32", "bare_django_fast_c32"),
    ("stream_filter_on_vs_off", "chat_stream_filter_on_c16", "chat_stream_filter_off_c16"),
    ("two_nodes_vs_one_classify", "classify_c32_lb_2nodes", "classify_c32_lb_1node"),
    ("two_nodes_vs_one_chat", "chat_slow_c256_lb_2nodes", "chat_slow_c256_lb_1node"),
    ("legit_under_attack_vs_alone", "legit_chat_under_attack_c32", "legit_chat_alone_c32"),
    ("legit_classify_under_attack_vs_alone", "legit_classify_under_attack_c32", "legit_classify_alone_c32"),
    ("granian_vs_gunicorn_chat_c32", "granian_chat_fast_c32", "gunicorn_chat_fast_c32"),
    ("granian_vs_gunicorn_slow_c256", "granian_chat_slow_c256", "gunicorn_chat_slow_c256"),
)
# Differences of two scenarios' p50: (figure, minuend, subtrahend).
P50_DIFFERENCES = (
    ("overhead_ms_p50", "chat_fast_c1", "standin_fast_direct_c1"),
    ("bare_django_overhead_ms_p50", "bare_django_fast_c1", "standin_fast_direct_c1"),
    ("granian_minus_gunicorn_p50_ms", "granian_chat_fast_c1", "gunicorn_chat_fast_c1"),
)


def _ratios(results: dict) -> dict:
    """Every ratio whose scenarios ran, in TARGETS' order."""
    scenarios = results["scenarios"]
    ratios = {}
    for name, top, bottom in RATE_RATIOS:
        if top in scenarios and bottom in scenarios:
            ratios[name] = scenarios[top]["requests_per_s"] / scenarios[bottom]["requests_per_s"]
    for name, minuend, subtrahend in P50_DIFFERENCES:
        if minuend in scenarios and subtrahend in scenarios:
            ratios[name] = scenarios[minuend]["p50_ms"] - scenarios[subtrahend]["p50_ms"]
    for name, scenario in (
        ("slow_backend_vs_ideal", "chat_slow_c256"),
        ("standin_direct_vs_ideal", "standin_slow_direct_c256"),
    ):
        if scenario in scenarios:
            ratios[name] = scenarios[scenario]["requests_per_s"] / IDEAL_SLOW
    if raw := results.get("raw_model"):
        if "classify_c32" in scenarios:
            ceiling = raw["by_length"]["sentences_per_s"]
            ratios["classify_vs_torch_ceiling"] = scenarios["classify_c32"]["requests_per_s"] / ceiling
        ratios["model_by_length_vs_batch_1"] = raw["by_length"]["sentences_per_s"] / raw["batch_1"]["sentences_per_s"]
    if pauses := [results[part]["max_gc_pause_ms"] for part in ("gc_slow_c256", "soak") if part in results]:
        ratios["max_gc_pause_ms"] = max(pauses)
    if soak := results.get("soak"):
        ratios["soak_stability"] = soak["last"]["requests_per_s"] / soak["first"]["requests_per_s"]
    return {name: ratios[name] for name in TARGETS if name in ratios}


# A target: (comparison, bound, unit) or, for a reference figure, the reason it has none.
TARGETS: dict[str, tuple[str, float, str] | str] = {
    "classify_vs_torch_ceiling": (">=", 1.5, ""),
    "classify_vs_unbatched": "reference: the same server with batching off",
    "model_by_length_vs_batch_1": "reference: what batching can give, in-process",
    "logging_on_vs_off": (">=", 0.95, ""),
    "chat_vs_bare_django": (">=", 0.75, ""),
    "overhead_ms_p50": ("<=", 2.0, " ms"),
    "bare_django_overhead_ms_p50": "reference: the bare forwarding view's own",
    "stream_filter_on_vs_off": (">=", 0.9, ""),
    "slow_backend_vs_ideal": (">=", 0.9, ""),
    "standin_direct_vs_ideal": "reference: the stand-in alone",
    "max_gc_pause_ms": ("<=", 20.0, " ms"),
    "soak_stability": (">=", 0.95, ""),
    # Both nodes share this machine's cores: a second node adds no CPU, so the ratio shows
    # what the balancer and a second set of processes cost, not the speed-up of two machines.
    "two_nodes_vs_one_classify": "reference: on one machine, the balancer's cost",
    "two_nodes_vs_one_chat": "reference: on one machine, the balancer's cost",
    "legit_under_attack_vs_alone": (">=", 0.8, ""),
    "legit_classify_under_attack_vs_alone": "reference: CPU-bound work shares the cores with the junk",
    "granian_vs_gunicorn_chat_c32": "server choice (decision 0080)",
    "granian_minus_gunicorn_p50_ms": "server choice (decision 0080)",
    "granian_vs_gunicorn_slow_c256": "server choice (decision 0080)",
}


def _verdict(name: str, value: float) -> str:
    target = TARGETS[name]
    if isinstance(target, str):
        return f"({target})"
    comparison, bound, unit = target
    met = value >= bound if comparison == ">=" else value <= bound
    return f"{'≥' if comparison == '>=' else '≤'} {bound:g}{unit}  {'met' if met else 'NOT MET'}"


def _print_table(results: dict) -> None:
    print(f"\nmachine: {results['machine']['cores']} cores; {results['seconds']} s per run, median of "
          f"{results['repeats']} runs per side on fresh {results['server']} servers, sides alternated")  # fmt: skip
    print(f"\n{'scenario':<38}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}  runs (req/s)")
    for name, s in results["scenarios"].items():
        if "p50_ms" not in s:  # the junk: its rate only
            print(f"{name:<38}{s['requests_per_s']:>10.1f}")
            continue
        runs = " ".join(f"{rate:.0f}" for rate in s.get("runs_requests_per_s", []))
        print(f"{name:<38}{s['requests_per_s']:>10.1f}{s['p50_ms']:>10.1f}{s['p99_ms']:>10.1f}{s['errors']:>8}  {runs}")
    for name, label in RAW_LABELS.items() if "raw_model" in results else ():
        raw = results["raw_model"][name]
        runs = " ".join(f"{rate:.0f}" for rate in raw.get("runs_sentences_per_s", []))
        print(f"{'raw model, ' + name:<38}{raw['sentences_per_s']:>10.1f}  sentences/s ({label}) {runs}")
    if "soak" in results:
        soak = results["soak"]
        first, last = soak["first"]["requests_per_s"], soak["last"]["requests_per_s"]
        pause = soak["max_gc_pause_ms"]
        print(
            f"soak: {soak['seconds']} s at 256 clients; first {soak['window_s']} s {first:.1f} req/s, last "
            f"{last:.1f} req/s; longest collector pause {pause:.1f} ms; collections {soak['collections']}"
        )
    for name, runs in results.get("servers", {}).items():
        print(f"{name}: {runs}")
    print(f"\n{'ratio':<38}{'value':>10}  target")
    for name, value in results["ratios"].items():
        print(f"{name:<38}{value:>10.2f}  {_verdict(name, value)}")
    if "abuse" in results:
        abuse = results["abuse"]
        print(
            f"\nabuse: {abuse['legit_answers']} legitimate answers, {abuse['legit_answers_logged']} in the request "
            f"log ({'each once' if abuse['legit_logged_exactly_once'] else 'NOT each once'})"
        )


if __name__ == "__main__":
    main()
