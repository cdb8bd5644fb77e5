"""Configuration reads kept per process until the configuration changes.

Every request reads the same few rows: its API key and team, the model's versions, routing
rules, fallback chain and running experiment. As queries they were most of a request's CPU
(docs/benchmarks.md), so each process keeps what it read, tagged with the configuration
*generation*: a token in the shared cache that every save or delete of a watched model
replaces (at once, and again after its transaction commits, so no process keeps rows read
before the commit). A request reads the token once (one cache GET) and reuses what its
process read under it. Changes made around the ORM (queryset `.update()`, SQL) call
`changed()` themselves, and nothing is kept longer than GATEWAY_SNAPSHOT_MAX_AGE_S anyway.

Only a cache shared by all processes (Redis) can carry the token: with the local-memory
cache of the embedded default every read goes to the database, as before.

While the database is out of reach (gateway/db.py), kept entries are served past the maximum
age: requests whose key and configuration were read before the outage are answered
(docs/reliability.md).

Entries are bounded (MAX_ENTRIES, least recently used out first), and reads whose key the
sender chooses before it has authenticated (an API key's prefix) keep only what exists:
outsiders can neither grow the snapshot nor push the rows real traffic needs out of it.
"""

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, transaction

from gateway import db

logger = logging.getLogger(__name__)

T = TypeVar("T")

GENERATION_KEY = "config:generation"
# Entries are keyed by request-supplied names too (model names of authenticated requests).
MAX_ENTRIES = 4096

_lock = threading.Lock()
_generation: str | None = None
_entries: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()  # least recently used first
_request = threading.local()  # the token this thread's current request read, if any


def enabled() -> bool:
    return settings.GATEWAY_SNAPSHOT_ENABLED


def read(key: tuple, load: Callable[[], T], *, keep_missing: bool = True) -> T:
    """`load()`'s result, reused while the generation holds and for at most the maximum age;
    a None result is not kept unless `keep_missing`."""
    if not enabled():
        return load()
    generation = _current_generation()
    if generation is None:  # the cache is unreachable: read the database
        return load()
    now = time.monotonic()
    global _generation
    with _lock:
        if generation != _generation:
            _entries.clear()
            _generation = generation
        kept = _entries.get(key)
        if kept is not None:
            _entries.move_to_end(key)
    if kept is not None and (now - kept[0] < settings.GATEWAY_SNAPSHOT_MAX_AGE_S or db.unreachable()):
        return kept[1]
    try:
        value = load()
    except (OperationalError, InterfaceError):
        if kept is None:
            raise
        db.set_reachable(False)
        return kept[1]  # degraded mode: what was read before the outage, however old
    if value is None and not keep_missing:
        return value
    with _lock:
        if generation == _generation:
            _entries[key] = (now, value)
            _entries.move_to_end(key)
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
    return value


@contextmanager
def request_scope():
    """Within a request the generation is read once: a request sees one configuration."""
    _request.generation = None
    _request.active = True
    try:
        yield
    finally:
        _request.active = False
        _request.generation = None


def changed(**_signal_kwargs) -> None:
    """A watched row changed: start a new generation now, and again once the change commits."""
    if not enabled():
        return
    _bump()
    transaction.on_commit(_bump)


def _bump() -> None:
    generation: str | None = uuid.uuid4().hex
    try:
        cache.set(GENERATION_KEY, generation, timeout=None)
    except Exception:
        logger.exception("Could not publish a new configuration generation")
        generation = None
    global _generation
    with _lock:  # this process drops what it kept even if the cache is down
        _entries.clear()
        _generation = generation
    if getattr(_request, "active", False):
        _request.generation = generation


def _current_generation() -> str | None:
    if getattr(_request, "active", False) and _request.generation is not None:
        return _request.generation
    try:
        generation = cache.get(GENERATION_KEY)
        if generation is None:  # first use, or the cache was emptied: start one
            candidate = uuid.uuid4().hex
            generation = candidate if cache.add(GENERATION_KEY, candidate, timeout=None) else cache.get(GENERATION_KEY)
    except Exception:
        logger.warning("Configuration generation unreadable; reading the database", exc_info=True)
        return None
    if getattr(_request, "active", False):
        _request.generation = generation
    return generation
