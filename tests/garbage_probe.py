"""Cyclic garbage per request, measured in a fresh interpreter (tests/test_lean_requests.py).

Usage: python -m tests.garbage_probe API_KEY PATH JSON_BODIES STATUS
Requests go through Django's WSGI handler, as a server calls it (tests.servers.wsgi_post), in
a process of their own: a test process carries other tests' threads and settings. Prints the
objects the collector found after the requests that followed the warm-up (the first calls
load models and fill pools and the snapshot).
"""

import gc
import json
import sys

import django

WARM_UP = 3


def main(key: str, path: str, bodies: list[dict], expected_status: str) -> None:
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    from tests.servers import wsgi_post

    app = WSGIHandler()

    def call(body: dict) -> None:
        status, content = wsgi_post(app, path, json.dumps(body).encode(), key)
        if not status.startswith(expected_status):
            sys.exit(f"{path} answered {status}: {content[:300]!r}")

    for body in bodies[:WARM_UP]:
        call(body)
    gc.collect()
    gc.disable()
    for body in bodies[WARM_UP:]:
        call(body)
    print(json.dumps({"requests": len(bodies) - WARM_UP, "garbage": gc.collect()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])
