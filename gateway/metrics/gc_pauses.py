"""Garbage-collector pauses of this process, as Prometheus metrics (GC_PAUSE, GC_PAUSE_MAX).

CPython calls `gc.callbacks` at the start and the stop of every collection, in the thread that
triggered it and with the GIL held: the time between is a pause of every thread of the process.

The callback only appends to a deque; a daemon thread moves the pauses into the metrics once a
second. Observing inside the callback could deadlock: a collection may start in a thread that
holds prometheus_client's value lock (any allocation can trigger one), and that lock is not
reentrant. `install()` runs once per serving process, after the fork (gunicorn.conf.py
`post_worker_init`).
"""

import collections
import gc
import threading
import time

from gateway.metrics import families

FLUSH_EVERY_S = 1.0

_pending: collections.deque[tuple[int, float]] = collections.deque()
_started_at = 0.0
_longest: dict[int, float] = {}
_flush_lock = threading.Lock()
_flusher: threading.Thread | None = None


def _on_collection(phase: str, info: dict) -> None:
    global _started_at
    if phase == "start":
        _started_at = time.perf_counter()
    else:
        _pending.append((info["generation"], time.perf_counter() - _started_at))


def flush() -> None:
    """Record the pauses seen since the last flush (the flusher thread calls it every second)."""
    with _flush_lock:
        while _pending:
            generation, pause = _pending.popleft()
            label = str(generation)
            families.GC_PAUSE.labels(label).observe(pause)
            if pause > _longest.get(generation, 0.0):
                _longest[generation] = pause
                families.GC_PAUSE_MAX.labels(label).set(pause)


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY_S)
        flush()


def install() -> None:
    """Time every collection of this process from now on; idempotent."""
    global _flusher
    for generation in ("0", "1", "2"):  # every series exists from the start, at zero
        families.GC_PAUSE.labels(generation)
        families.GC_PAUSE_MAX.labels(generation)
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)
    if _flusher is None or not _flusher.is_alive():
        _flusher = threading.Thread(target=_flush_forever, name="gc-pause-metrics", daemon=True)
        _flusher.start()
