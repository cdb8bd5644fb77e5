"""`make bench`: the gateway under load, started the way production runs it.

Runs the gateway under gunicorn (gunicorn.conf.py, the `make run` settings) on PostgreSQL
and Redis, loads it with wrk from a separate process, and reports per scenario requests/s,
p50, p99 and errors, plus ratios measured in this same run (docs/benchmarks.md explains them).
The abuse scenario (`_abuse`) measures one key's throughput alone and under a flood of junk
(docs/decisions/0044-limits-by-default.md). Writes bench/results/latest.json and prints a table.
BENCH_ONLY=abuse runs the abuse scenario alone.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

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
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
SLICE = 5000  # sentences a classification scenario draws from: more than one run can send
ONLY = os.environ.get("BENCH_ONLY", "")
# The bench's own keys are served whatever the load: the default limits would refuse most of it.
UNLIMITED = {"requests_per_minute": 2_000_000_000, "tokens_per_minute": 2_000_000_000, "max_in_flight": 1_000_000}
# Each scenario's load comes from one address, which the per-address ceiling would refuse; the
# abuse scenario gives its clients addresses of their own, as a trusted proxy reports them.
ONE_ADDRESS = {"GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS": "0"}

import django  # noqa: E402

from tests.servers import free_port, gunicorn, gunicorn_node, haproxy, http, serving  # noqa: E402


def main() -> None:
    if not os.path.isfile(SENTENCES):
        sys.exit("Set SHARED_DATA_DIR to the directory holding sst2/train.tsv (or BENCH_SENTENCES to the file).")
    _create_database()
    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("bootstrap", verbosity=0)
    cache.clear()
    sentences = _sentences()
    results = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]}, "seconds": SECONDS}
    # The sentences every classification scenario draws from, in file order; the response
    # cache is emptied before each scenario, so none is answered from it.
    served = sentences[:SLICE]
    if not ONLY:
        results["raw_model"] = _raw_model_throughput(served)
        for name, label in RAW_LABELS.items():
            print(f"raw model, {label}: {results['raw_model'][name]['sentences_per_s']:.1f} sentences/s")

    slow_port, fast_port = free_port(), free_port()
    standin = [sys.executable, "-m", "tests.standin_upstream", "--port"]
    with (
        serving([*standin, str(slow_port), "--delay", "0.5"], {}, f"http://127.0.0.1:{slow_port}/v1/models"),
        serving([*standin, str(fast_port)], {}, f"http://127.0.0.1:{fast_port}/v1/models"),
        tempfile.TemporaryDirectory() as scratch,
    ):
        key = _setup_rows(slow_port, fast_port)
        scratch = Path(scratch)
        classify = _bodies(scratch / "classify", served)
        chat_slow = _chat_bodies(scratch / "chat-slow", "bench-slow")
        chat_fast = _chat_bodies(scratch / "chat-fast", "bench-fast")
        streams = {mode: _stream_bodies(scratch / f"stream-{mode}", f"bench-stream-{mode}") for mode in ("on", "off")}
        scenarios = results["scenarios"] = {}
        if not ONLY:
            _classic_scenarios(scenarios, key, classify, chat_slow, chat_fast, streams, slow_port, fast_port)
        results["abuse"] = _abuse(scenarios, chat_slow, classify, scratch)

    results["ratios"] = _ratios(results)
    out = ROOT / "bench/results/latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)
    print(f"\nwritten to {out.relative_to(ROOT)}")


def _classic_scenarios(scenarios, key, classify, chat_slow, chat_fast, streams, slow_port, fast_port) -> None:
    from django.core.cache import cache

    with gunicorn(ONE_ADDRESS) as base:
        _warm(base, key)
        scenarios["classify_c32"] = _wrk(base + "/api/v1/predict", classify, key, 32)
        scenarios["chat_slow_c256"] = _wrk(base + "/v1/chat/completions", chat_slow, key, 256)
        scenarios["chat_fast_c1"] = _wrk(base + "/v1/chat/completions", chat_fast, key, 1, threads=1)
        for mode in ("off", "on"):
            scenarios[f"chat_stream_filter_{mode}_c16"] = _wrk(base + "/v1/chat/completions", streams[mode], key, 16)
        _set_batch_size(1)
        _warm(base, key)
        cache.clear()
        scenarios["classify_unbatched_c32"] = _wrk(base + "/api/v1/predict", classify, key, 32)
        _set_batch_size(32)
    with gunicorn({**ONE_ADDRESS, "GATEWAY_REQUEST_LOG_ENABLED": "false"}) as base:
        _warm(base, key)
        cache.clear()
        scenarios["classify_c32_log_off"] = _wrk(base + "/api/v1/predict", classify, key, 32)
    scenarios.update(_scale_out(key, classify, chat_slow))
    slow_url = f"http://127.0.0.1:{slow_port}/v1/chat/completions"
    fast_url = f"http://127.0.0.1:{fast_port}/v1/chat/completions"
    scenarios["standin_slow_direct_c256"] = _wrk(slow_url, chat_slow, key, 256)
    scenarios["standin_fast_direct_c1"] = _wrk(fast_url, chat_fast, key, 1, threads=1)


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
    "file_order": "batches of 32 in file order",
    "batch_1": "one sentence per pass",
    "by_length": "batches of 32 split by length as the batcher does",
}


def _raw_model_throughput(sentences: list[str]) -> dict:
    """The backend the gateway serves, called in-process with all cores: on batches of 32 in
    file order (the ratio's denominator), and for reference one at a time and split by length."""
    from types import SimpleNamespace

    import torch

    from inference.backends import load_runner
    from inference.batching import by_length
    from inference.models import ModelVersion

    torch.set_num_threads(os.cpu_count())
    classify = load_runner(ModelVersion.objects.get(name="sentiment", status="production"))
    classify(sentences[:32])  # warm-up

    def timed(passes: list[list[str]]) -> dict:
        started = time.perf_counter()
        for texts in passes:
            classify(texts)
        elapsed = time.perf_counter() - started
        count = sum(len(texts) for texts in passes)
        return {"sentences": count, "seconds": elapsed, "sentences_per_s": count / elapsed}

    batches = [sentences[start : start + 32] for start in range(0, len(sentences), 32)]
    split = [[item.text for item in group] for batch in batches[:64] for group in by_length(
        [SimpleNamespace(text=text) for text in batch])]  # fmt: skip
    return {
        "file_order": timed(batches),
        "batch_1": timed([[text] for text in sentences[:512]]),
        "by_length": timed(split),
    }


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


def _scale_out(key: str, classify: Path, chat_slow: Path) -> dict:
    """The classify and slow-chat scenarios through HAProxy (as tests/test_scale_out.py runs it:
    round robin, /ready checks) in front of one node, then of two: separate gunicorn masters
    with the `make run` settings, sharing PostgreSQL and Redis."""
    from django.core.cache import cache

    scenarios = {}
    for label, count in (("1node", 1), ("2nodes", 2)):
        with ExitStack() as stack:
            nodes = {f"node{i}": stack.enter_context(gunicorn_node({})) for i in range(count)}
            balancer = stack.enter_context(haproxy({name: node.port for name, node in nodes.items()}))
            for node in nodes.values():
                _warm(node.url, key)
            cache.clear()
            scenarios[f"classify_c32_lb_{label}"] = _wrk(balancer.url + "/api/v1/predict", classify, key, 32)
            scenarios[f"chat_slow_c256_lb_{label}"] = _wrk(balancer.url + "/v1/chat/completions", chat_slow, key, 256)
    return scenarios


def _bodies(path: Path, sentences: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences))
    return path


def _chat_bodies(path: Path, model: str) -> Path:
    bodies = [{"model": model, "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(1000)]
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def _stream_bodies(path: Path, model: str) -> Path:
    """Streamed answers (the stand-in echoes one word per event) with a card number and an SSN
    in them: the filter holds back and redacts across events."""
    bodies = [
        {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": f"order {i} paid with 4111 1111 1111 1111 by 123-45-6789 ok"}],
        }
        for i in range(1000)
    ]
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def _warm(base: str, key: str) -> None:
    """Each worker loads its models at start; this also reloads edited versions everywhere."""
    for _ in range(20):
        http("POST", base + "/api/v1/predict", {"text": "warm up"}, {"X-API-Key": key})


def _wrk(
    url: str, bodies: Path, key: str, connections: int, threads: int = 2, script="post_lines.lua", env=None
) -> dict:
    threads = min(threads, connections)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{SECONDS}s", "--timeout", "10s",
        "-s", str(ROOT / "bench/wrk" / script), url, "--", str(bodies),
    ]  # fmt: skip
    env = {**os.environ, **(env or {}), "WRK_API_KEY": key, "WRK_THREADS": str(threads)}
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    stats = json.loads(re.search(r"WRK_JSON (\{.*\})", output).group(1))
    result = {
        "connections": connections,
        "requests_per_s": stats["requests"] / (stats["duration_us"] / 1e6),
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "errors": stats["non_2xx"] + stats["socket_errors"],
        "requests": stats["requests"],
    }
    print(f"{url} c={connections}: {result['requests_per_s']:.1f} req/s, p50 {result['p50_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}", flush=True)  # fmt: skip
    return result


def _abuse(scenarios: dict, chat_slow: Path, classify: Path, scratch: Path) -> dict:
    """One legitimate key at 32 clients, alone and then while 128 connections send junk as fast
    as they can: guessed and malformed keys, another tenant's key with hostile fields, JSON
    nested 20,000 deep, bodies over the size limit, an unknown method (bench/wrk/junk.lua).
    Each side has addresses of its own behind a trusted proxy, as in production behind a load
    balancer. The key calls an LLM (the 500 ms stand-in), then, for reference, classifies on the
    local model, which competes with the junk for the same cores. Every answer the legitimate
    client received must be in the request log, once."""
    from django.core.cache import cache

    from gateway.models import APIKey, RequestLog

    legit = APIKey.objects.create_key(name=f"bench-legit-{int(time.time())}", **UNLIMITED)[1]
    attacker = APIKey.objects.create_key(name=f"bench-attacker-{int(time.time())}")[1]  # the default limits
    # The legitimate client alone sends more than the default 6,000 requests a minute per address.
    env = {"GATEWAY_TRUST_X_FORWARDED_FOR": "true", "GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS": "600000"}
    answered = []

    def legit_load(name: str, path: str, bodies: Path) -> None:
        ids = scratch / f"{name}.ids"
        wrk_env = {"WRK_FORWARDED_FOR": "203.0.113.10", "WRK_IDS_FILE": str(ids)}
        scenarios[name] = _wrk(base + path, bodies, legit, 32, script="legit.lua", env=wrk_env)
        answered.extend(ids.read_text().split())

    with gunicorn(env) as base:
        _warm(base, legit)
        for workload, path, bodies in (
            ("chat", "/v1/chat/completions", chat_slow),
            ("classify", "/api/v1/predict", classify),
        ):
            cache.clear()
            legit_load(f"legit_{workload}_alone_c32", path, bodies)
            cache.clear()
            junk_command = ["wrk", "-t2", "-c128", f"-d{SECONDS + 5}s", "--timeout", "10s"]
            junk = subprocess.Popen(
                [*junk_command, "-s", str(ROOT / "bench/wrk/junk.lua"), base],
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
            print(f"junk c=128: {rate:.1f} req/s", flush=True)
        time.sleep(2)  # the web processes' log writers flush every GATEWAY_REQUEST_LOG_BUFFER_S
    logged = sum(
        RequestLog.objects.filter(request_id__in=answered[start : start + 5000]).count()
        for start in range(0, len(answered), 5000)
    )
    return {
        "legit_answers": len(answered),
        "legit_answers_logged": logged,
        "legit_logged_exactly_once": logged == len(answered) == len(set(answered)),
    }


def _ratios(results: dict) -> dict:
    s = results["scenarios"]
    rps = {name: scenario["requests_per_s"] for name, scenario in s.items()}
    abuse = {
        "legit_under_attack_vs_alone": rps["legit_chat_under_attack_c32"] / rps["legit_chat_alone_c32"],
        "legit_classify_under_attack_vs_alone": rps["legit_classify_under_attack_c32"]
        / rps["legit_classify_alone_c32"],
    }
    if ONLY:
        return abuse
    raw = results["raw_model"]
    ideal_slow = 256 / 0.5
    return {
        "classify_vs_raw": rps["classify_c32"] / results["raw_model"]["file_order"]["sentences_per_s"],
        "classify_vs_unbatched": rps["classify_c32"] / rps["classify_unbatched_c32"],
        "slow_backend_vs_ideal": rps["chat_slow_c256"] / ideal_slow,
        "logging_on_vs_off": rps["classify_c32"] / rps["classify_c32_log_off"],
        "overhead_ms_p50": s["chat_fast_c1"]["p50_ms"] - s["standin_fast_direct_c1"]["p50_ms"],
        "standin_direct_vs_ideal": rps["standin_slow_direct_c256"] / ideal_slow,
        "model_by_length_vs_batch_1": raw["by_length"]["sentences_per_s"] / raw["batch_1"]["sentences_per_s"],
        "stream_filter_on_vs_off": rps["chat_stream_filter_on_c16"] / rps["chat_stream_filter_off_c16"],
        **_two_nodes_vs_one(rps),
        **abuse,
    }


def _two_nodes_vs_one(rps: dict) -> dict:
    return {
        "two_nodes_vs_one_classify": rps["classify_c32_lb_2nodes"] / rps["classify_c32_lb_1node"],
        "two_nodes_vs_one_chat": rps["chat_slow_c256_lb_2nodes"] / rps["chat_slow_c256_lb_1node"],
    }


TARGETS = {
    "classify_vs_raw": ">= 1.0",
    "classify_vs_unbatched": ">= 2.5",
    "slow_backend_vs_ideal": ">= 0.9",
    "logging_on_vs_off": ">= 0.9",
    "overhead_ms_p50": "<= 3 ms",
    "standin_direct_vs_ideal": "(reference: the stand-in alone)",
    "model_by_length_vs_batch_1": "(reference: what batching can give, in-process)",
    "stream_filter_on_vs_off": ">= 0.9",
    # Both nodes share this machine's cores: a second node adds no CPU, so the ratio shows
    # what the balancer and a second set of processes cost, not the speed-up of two machines.
    "two_nodes_vs_one_classify": "(reference: on one machine, the balancer's cost, not a speed-up)",
    "two_nodes_vs_one_chat": "(reference: on one machine, the balancer's cost, not a speed-up)",
    "legit_under_attack_vs_alone": ">= 0.8",
    "legit_classify_under_attack_vs_alone": "(reference: CPU-bound work shares the cores with the junk)",
}


def _print_table(results: dict) -> None:
    print(f"\nmachine: {results['machine']['cores']} cores; {results['seconds']} s per scenario")
    print(f"\n{'scenario':<38}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, s in results["scenarios"].items():
        if "p50_ms" not in s:  # the junk: its rate only
            print(f"{name:<38}{s['requests_per_s']:>10.1f}")
            continue
        print(f"{name:<38}{s['requests_per_s']:>10.1f}{s['p50_ms']:>10.1f}{s['p99_ms']:>10.1f}{s['errors']:>8}")
    for name, label in RAW_LABELS.items() if "raw_model" in results else ():
        rate = results["raw_model"][name]["sentences_per_s"]
        print(f"{'raw model, ' + name:<38}{rate:>10.1f}  sentences/s ({label})")
    print(f"\n{'ratio':<38}{'value':>10}  target")
    for name, value in results["ratios"].items():
        print(f"{name:<38}{value:>10.2f}  {TARGETS[name]}")
    abuse = results["abuse"]
    print(
        f"\nabuse: {abuse['legit_answers']} legitimate answers, {abuse['legit_answers_logged']} in the request log "
        f"({'each once' if abuse['legit_logged_exactly_once'] else 'NOT each once'})"
    )


if __name__ == "__main__":
    main()
