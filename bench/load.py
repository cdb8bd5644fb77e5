"""The load of a bench scenario: wrk from a separate process, and the request bodies it sends."""

import json
import os
import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))


def wrk(url: str, bodies: Path, key: str, connections: int, threads=2, seconds=None, env=None):
    return finish(start(url, bodies, key, connections, threads, seconds, env))


def start(url, bodies, key, connections, threads=2, seconds=None, env=None):
    """wrk running in the background; `finish` waits for it and reads its figures."""
    threads = min(threads, connections)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds or SECONDS}s", "--timeout", "10s",
        "-s", str(ROOT / "bench/wrk/post_lines.lua"), url, "--", str(bodies),
    ]  # fmt: skip
    env = {**os.environ, **(env or {}), "WRK_API_KEY": key, "WRK_THREADS": str(threads)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    process.url, process.connections = url, connections  # type: ignore[attr-defined]
    return process


def finish(process) -> dict:
    output = process.communicate()[0]
    if process.returncode:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output[-2000:]}")
    stats = json.loads(re.search(r"WRK_JSON (\{.*\})", output).group(1))
    result = {
        "connections": process.connections,
        "requests_per_s": stats["requests"] / (stats["duration_us"] / 1e6),
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "errors": stats["non_2xx"] + stats["socket_errors"],
        "requests": stats["requests"],
    }
    figures = f"{result['requests_per_s']:.1f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    print(f"    {process.url} c={process.connections}: {figures}, errors {result['errors']}", flush=True)
    return result


def median_of(runs: list[dict]) -> dict:
    """One scenario measured on several fresh servers: the median of each figure, the errors
    of all runs, and each run's rate."""
    return {
        "connections": runs[0]["connections"],
        "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "runs_requests_per_s": [round(r["requests_per_s"], 1) for r in runs],
    }


def classify_bodies(path: Path, sentences: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences))
    return path


def chat_bodies(path: Path, model: str) -> Path:
    bodies = [{"model": model, "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(1000)]
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def stream_bodies(path: Path, model: str) -> Path:
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
