"""The database connection's hand-back, and whether the database is out of reach.

`unreachable()` is this process's view: set when a write or a read fails to reach PostgreSQL,
cleared by the request log writer once a write (or its probe, every second) gets through. While
it holds, configuration is served from the snapshot however old (gateway/caching/snapshot.py),
last-use bookkeeping is skipped, and log rows wait in the spool (gateway/record/log_writer.py).
"""

import logging
import threading

from django.db import connection

from gateway.metrics import families

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_unreachable = False


def release_connection() -> None:
    """Hand the thread's database connection back to the pool before a long wait.

    Threads waiting on a model or an upstream must not hold every pooled connection:
    with 256 requests in flight and 16 connections, the 17th would queue for one just to
    authenticate. Inside a transaction (tests) the connection is kept.
    """
    if not connection.in_atomic_block:
        connection.close()


def unreachable() -> bool:
    return _unreachable


def set_reachable(reachable: bool) -> None:
    """Record what a database call found; a change is logged once and shown in gateway_degraded."""
    global _unreachable
    with _lock:
        if _unreachable != reachable:
            return
        _unreachable = not reachable
    families.DEGRADED.labels("database").set(0 if reachable else 1)
    if reachable:
        logger.warning("Database reachable again: leaving degraded mode")
    else:
        logger.error(
            "Database unreachable: degraded mode (configuration from the snapshot, log rows to the spool, "
            "requests that need the database answer 503)"
        )
