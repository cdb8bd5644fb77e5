"""Cyclic garbage per request, measured in a fresh interpreter (tests/test_lean_requests.py).

Usage: python -m tests.garbage_probe API_KEY PATH JSON_BODIES STATUS
Requests go through Django's WSGI handler, as a server calls it: the test client would add
reference cycles of its own (its response keeps the request), and a test process carries
other tests' threads and settings. Prints the objects the collector found after the requests
that followed the warm-up (first calls load models and fill pools and the snapshot).
"""

import gc
import io
import json
import sys

import django

WARM_UP = 3


def main(key: str, path: str, bodies: list[dict], expected_status: str) -> None:
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()

    def call(body: dict) -> None:
        data = json.dumps(body).encode()
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
            "HTTP_X_API_KEY": key,
        }
        status = []
        response = app(environ, lambda line, headers: status.append(line))
        try:
            content = b"".join(response)
        finally:
            response.close()
        if not status[0].startswith(expected_status):
            sys.exit(f"{path} answered {status[0]}: {content[:300]!r}")

    for body in bodies[:WARM_UP]:
        call(body)
    gc.collect()
    gc.disable()
    for body in bodies[WARM_UP:]:
        call(body)
    print(json.dumps({"requests": len(bodies) - WARM_UP, "garbage": gc.collect()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])
