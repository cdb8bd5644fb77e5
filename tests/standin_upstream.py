"""A real OpenAI-compatible HTTP server standing in for a paid provider.

Tests script what it answers per upstream model name (`script(model, [behaviour, ...])`):
"ok", {"status": 429, "retry_after": "0"}, {"status": 500}, {"delay": seconds},
{"break_after": n} (a stream cut after n content events). Unscripted calls answer "ok", or
what `unscripted` is set to.
It records every request it receives. Run as a process for benchmarks:
`python -m tests.standin_upstream --port 9100 --delay 0.5`.
"""

import argparse
import collections
import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandinUpstream:
    def __init__(self, port: int = 0, default_delay: float = 0.0):
        self.default_delay = default_delay
        self.requests: list[dict] = []
        # What unscripted calls get: "ok", or a behaviour for all of them (a fault, tests/chaos.py).
        self.unscripted: str | dict = "ok"
        self._scripts: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = _Server(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, model: str, behaviours: list) -> None:
        with self._lock:
            self._scripts[model].extend(behaviours)

    def calls(self, model: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if model is None or r["body"].get("model") == model]

    def next_behaviour(self, model: str):
        with self._lock:
            queue = self._scripts.get(model)
            return queue.popleft() if queue else self.unscripted

    def record(self, path: str, headers, body: dict) -> None:
        with self._lock:
            self.requests.append({"path": path, "headers": dict(headers), "body": body})

    def start(self) -> "StandinUpstream":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of benchmark connections arrive at once

    def handle_error(self, request, client_address):
        pass  # a client that gave up (a timeout under test) is expected, not an error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # client's delayed ACK hold every answer back ~40 ms.
    disable_nagle_algorithm = True
    standin: StandinUpstream

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "standin", "object": "model", "owned_by": "test"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.standin.record(self.path, self.headers, body)
        behaviour = self.standin.next_behaviour(body.get("model", ""))
        if isinstance(behaviour, dict) and "delay" in behaviour:
            time.sleep(behaviour["delay"])
        elif self.standin.default_delay:
            time.sleep(self.standin.default_delay)
        if isinstance(behaviour, dict) and "status" in behaviour:
            headers = {"Retry-After": behaviour["retry_after"]} if "retry_after" in behaviour else {}
            message = behaviour.get("message", f"scripted {behaviour['status']}")
            return self._json(behaviour["status"], {"error": {"message": message, "type": "api_error"}}, headers)
        if self.path.endswith("/embeddings"):
            return self._embeddings(body)
        if body.get("stream"):
            return self._stream(body, behaviour.get("break_after") if isinstance(behaviour, dict) else None)
        words = _answer(body)
        usage = _usage(body, words)
        self._json(
            200,
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )

    def _stream(self, body, break_after):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        words = _answer(body)
        base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = body.get("model")
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        events += [{**base, "choices": [{"index": 0, "delta": {"content": f"{w} "}}]} for w in words]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": _usage(body, words)})
        for count, event in enumerate(events):
            if break_after is not None and count > break_after:
                # Cut the connection mid-body: no last chunk, no [DONE].
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _embeddings(self, body):
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": _vector(t)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _json(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _answer(body) -> list[str]:
    """Echo the last user message, so tests can check the answer came from this request."""
    last = next((m.get("content") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return ["Echo:", *str(last).split()][: body.get("max_tokens") or 64]


def _usage(body, words) -> dict:
    prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in body.get("messages", []))
    return {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}


def _vector(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b - 128 for b in digest[:dims]]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    args = parser.parse_args()
    standin = StandinUpstream(args.port, args.delay)
    print(f"stand-in upstream on {standin.url}", flush=True)
    standin.server.serve_forever()
