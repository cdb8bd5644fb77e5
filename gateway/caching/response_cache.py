"""Response cache in Redis: a deterministic call's answer, reused by every process.

The key is the model version (its id and its last save, so an edited version never serves
answers of its former self) + task + the normalized input + the parameters + the content
filter policy the answer was filtered under, and the caller's team unless the version's
answers may be shared (ModelVersion.cache_scope). Entries are fresh for the version's
`cache_ttl_s` (0: off), then usable for `cache_stale_if_error_s` more, only when every
candidate has failed (RFC 5861's stale-if-error: `stale_if_error()`). Calls sampled at
temperature > 0 are not cached unless the version says so. A client's `Cache-Control:
no-cache` skips the lookup (the fresh answer is stored, no stale one is served), `no-store`
skips storing. When Redis is down the cache is skipped.

Entries live in the "responses" cache (settings.CACHES: a Redis of its own in production,
which may evict them) and are stored as JSON, so answers must be JSON values.

The chat endpoint uses it like the local ones:

    entry = response_cache.entry(ctx, version, task=..., inputs=messages, params={...},
                                 sampled=temperature > 0, cache_control=request.headers.get("Cache-Control", ""))
    answer = entry.lookup()          # None on a miss; on a hit ctx.cache_hit and cost_saved_usd are set
    if answer is None:
        answer = ...                 # run the model; ctx.cost_usd set
        entry.store(answer)          # a JSON value
"""

import hashlib
import json
import logging
import time
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import caches

from gateway.limits import counters
from gateway.record.context import RequestContext

logger = logging.getLogger(__name__)


@dataclass
class Entry:
    ctx: RequestContext
    key: str | None  # None: this call is not cached
    ttl_s: int
    stale_s: int
    may_read: bool
    may_store: bool
    _stale: dict | None = None  # an entry past its freshness that lookup() found

    def lookup(self) -> Any | None:
        if self.key is None or not self.may_read:
            return None
        try:
            cached = caches["responses"].get(self.key)
        except counters.REDIS_ERRORS as exc:
            counters.store_down("response cache", exc, fail_open=True)
            return None
        except ValueError:  # not JSON (an entry pickled by an earlier release): a miss, overwritten
            logger.warning("Unreadable response cache entry %s: treated as a miss", self.key)
            return None
        if cached is None:
            return None
        if time.time() - cached["stored_at"] >= self.ttl_s:
            self._stale = cached
            return None
        return self._hit(cached)

    def stale_if_error(self) -> Any | None:
        """The answer lookup() found past its freshness, if still within the version's
        stale-if-error window: served (marked stale) instead of an error, never made up."""
        cached = self._stale
        if cached is None or time.time() - cached["stored_at"] >= self.ttl_s + self.stale_s:
            return None
        self.ctx.served_stale = True
        self.ctx.response_headers["X-Cache"] = "stale"
        return self._hit(cached)

    def store(self, answer: Any) -> None:
        if self.key is None or not self.may_store:
            return
        value = {"answer": answer, "cost_usd": str(self.ctx.cost_usd), "stored_at": time.time()}
        try:
            # Kept in Redis for the stale window too; lookup() tells fresh from stale.
            caches["responses"].set(self.key, value, self.ttl_s + self.stale_s)
        except counters.REDIS_ERRORS as exc:
            counters.store_down("response cache", exc, fail_open=True)

    def _hit(self, cached: dict) -> Any:
        self.ctx.cache_hit = True
        self.ctx.cost_saved_usd = Decimal(cached["cost_usd"])
        return cached["answer"]


def entry(
    ctx: RequestContext,
    version,
    *,
    task: str,
    inputs: Any,
    params: dict | None = None,
    sampled: bool = False,
    cache_control: str = "",
    filtered_as: str = "",
) -> Entry:
    directives = {part.strip().split("=")[0].lower() for part in cache_control.split(",")}
    cached = (
        settings.GATEWAY_RESPONSE_CACHE
        and version.cache_ttl_s > 0
        and (not sampled or version.cache_sampled)
        and ctx.api_key is not None
    )
    key = _key(ctx, version, task, inputs, params or {}, filtered_as) if cached else None
    return Entry(
        ctx,
        key,
        version.cache_ttl_s,
        version.cache_stale_if_error_s,
        "no-cache" not in directives,
        "no-store" not in directives,
    )


def _key(ctx: RequestContext, version, task: str, inputs: Any, params: dict, filtered_as: str) -> str:
    assert ctx.api_key is not None  # entry() caches only calls made with a key
    if version.cache_is_shared:
        scope = "shared"
    elif ctx.api_key.team_id is not None:
        scope = f"team{ctx.api_key.team_id}"
    else:
        scope = f"key{ctx.api_key.pk}"
    # A stable digest: Python's hash() is salted per process and would differ between workers.
    canonical = json.dumps(
        {"task": task, "inputs": _normalized(inputs), "params": _normalized(params), "filter": filtered_as},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"gw:rc:{version.pk}:{version.updated_at.timestamp():.6f}:{scope}:{digest}"


def _normalized(value: Any) -> Any:
    """One form for inputs that mean the same: Unicode NFC (JSON key order and spacing never count)."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list | tuple):
        return [_normalized(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    return value
