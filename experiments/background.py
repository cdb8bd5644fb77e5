"""Work that must never slow the caller: shadow answers and guardrail checks.

A small thread pool per web process with a bounded backlog (EXPERIMENT_BACKGROUND_*):
a job is handed over in microseconds, and when the backlog is full it is dropped (and
logged) rather than queued without limit. See docs/decisions/0021-shadow-traffic.md for
why this is a thread pool and not a Celery task.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


class BoundedExecutor:
    def __init__(self, *, workers: int, max_pending: int, name: str):
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(max(1, max_pending))
        self._idle = threading.Condition()
        self._pending = 0

    def submit(self, fn, *args) -> bool:
        """Run fn(*args) on a pool thread; False (nothing queued) when the backlog is full."""
        if not self._slots.acquire(blocking=False):
            return False
        with self._idle:
            self._pending += 1
        self._pool.submit(self._run, fn, args)
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every accepted job has finished; False if some are still running after timeout_s."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)

    def _run(self, fn, args) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("Background job %s failed", getattr(fn, "__qualname__", fn))
        finally:
            # The thread's own database connection goes back to the pool between jobs.
            connection.close()
            self._slots.release()
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()


# Built on first use, in the process that uses it: never before gunicorn forks its workers.
_executor: BoundedExecutor | None = None
_lock = threading.Lock()


def _get() -> BoundedExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = BoundedExecutor(
                workers=settings.EXPERIMENT_BACKGROUND_WORKERS,
                max_pending=settings.EXPERIMENT_BACKGROUND_QUEUE,
                name="experiments-background",
            )
        return _executor


def submit(fn, *args) -> bool:
    return _get().submit(fn, *args)


def wait_idle(timeout_s: float) -> bool:
    executor = _executor
    return executor is None or executor.wait_idle(timeout_s)


def shutdown() -> None:
    """Finish the accepted jobs and stop the threads (a worker exiting); the next submit starts afresh."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown()
