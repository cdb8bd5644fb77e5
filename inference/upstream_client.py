"""Calls to OpenAI-compatible upstreams: pooled urllib3, JSON passed through, one retry loop.

Chosen over the openai SDK on the hot path (docs/decisions/0005-upstream-client.md): its
httpx transport collapses under hundreds of concurrent calls and its parsing costs ~3 ms.
"""

import email.utils
import functools
import json
import logging
import time

import urllib3
from django.conf import settings
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from inference.models import Provider
from inference.models.providers import ProviderNotTrusted

logger = logging.getLogger(__name__)
_http = urllib3.PoolManager(num_pools=32, maxsize=settings.UPSTREAM_POOL_SIZE, block=False, retries=False)


class UpstreamError(Exception):
    """An attempt failed in a way that another attempt or another version may not."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        # A client error other than 408/429 will fail the same way again (bad credentials,
        # unknown model): go straight to the next version instead.
        if self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429):
            return False
        return self.retry_after is None or self.retry_after <= settings.UPSTREAM_MAX_RETRY_AFTER_S


class UpstreamRejected(Exception):
    """The upstream refused the request itself (400/422): the client's to fix, not retried."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def post(provider: Provider, path: str, body: bytes, *, stream: bool = False) -> urllib3.BaseHTTPResponse:
    """One attempt. Returns a 2xx response (unread when streaming); raises otherwise."""
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    try:
        api_key = provider.api_key()
    except ProviderNotTrusted as exc:
        raise UpstreamError(str(exc), status=403) from exc  # the same on every attempt: not retried
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        response = _http.request(
            "POST",
            provider.base_url.rstrip("/") + path,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(connect=min(provider.timeout_s, 10.0), read=provider.timeout_s),
            preload_content=not stream,
        )
    except urllib3.exceptions.HTTPError as exc:  # timeouts, refused connections, broken sockets
        raise UpstreamError(f"{provider}: {exc.__class__.__name__}") from exc
    if response.status < 400:
        return response
    detail = _error_message(response)
    if response.status in (400, 422):
        raise UpstreamRejected(f"{provider} rejected the request: {detail}", response.status)
    raise UpstreamError(
        f"{provider} answered {response.status}: {detail}",
        status=response.status,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def with_retries(provider: Provider, attempt, on_retry=None):
    """Run `attempt()` with exponential backoff and jitter, honouring Retry-After;
    `on_retry(error)` is called before each retry.

    The only retry loop on the path: the SDK's and urllib3's own retries are off.
    """
    return _policy(provider.max_retries)(_run, attempt, on_retry)


@functools.lru_cache(maxsize=32)
def _policy(max_retries: int) -> Retrying:
    """One policy per retry count, shared by every call and thread (tenacity keeps a call's
    state thread-local): built per call, its reference cycles were garbage of every request."""
    return Retrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=_wait,
        retry=retry_if_exception(_retryable),
        before_sleep=_before_sleep,
        reraise=True,
    )


def _run(attempt, on_retry):
    return attempt()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable


def _before_sleep(retry_state) -> None:
    # tenacity has set the outcome by the time it calls before_sleep.
    _, on_retry = retry_state.args
    if on_retry is not None:
        on_retry(retry_state.outcome.exception())


def _wait(retry_state) -> float:
    exc = retry_state.outcome.exception()
    if getattr(exc, "retry_after", None) is not None:
        return exc.retry_after
    backoff = wait_exponential_jitter(
        multiplier=settings.UPSTREAM_BACKOFF_INITIAL_S, max=settings.UPSTREAM_BACKOFF_MAX_S, jitter=0.1
    )
    return backoff(retry_state)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from either of its forms (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _error_message(response) -> str:
    """The error message an OpenAI-compatible API addresses to its client; a 400's reaches the
    caller. Any other body (an HTML error page, a proxy's) is only logged."""
    data = response.data
    response.release_conn()
    try:
        message = json.loads(data)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    if isinstance(message, str) and message:
        return message[:500]
    logger.warning("Upstream answered %s without an error message: %r", response.status, data[:500])
    return f"no error message (HTTP {response.status})"
