"""The run step for upstream versions: each candidate in turn under its circuit breaker, with
retries; the JSON passed through and costed from its `usage`; streams relayed event by event.

The pipeline calls `check`, `cache_key`, `estimate`, `serve`, `to_cache` and `from_cache`
(inference/runners/local.py has the same six), and `open_stream` and `relay` for a stream.

What reaches a provider is bounded (docs/decisions/0046-bounded-llm-requests.md): only the
parameters its allowlist names, and a chat's max_tokens within the version's cap (its default
when the request sets none). A call, its retries and fallbacks included, ends by
GATEWAY_UPSTREAM_DEADLINE_S; a stream by GATEWAY_STREAM_DEADLINE_S.
"""

import copy
import itertools
import json
import logging
import time
from collections.abc import Iterator
from functools import partial

import urllib3
from django.conf import settings

from gateway.api.errors import InvalidInput, UpstreamFailed, UpstreamRefused, UpstreamUnavailable
from gateway.db import release_connection
from gateway.filters.content import StreamFilter
from gateway.limits.admission import Reservation
from gateway.metrics import families
from gateway.record.context import RequestContext
from inference import pricing, upstream_client
from inference.breaker import Breaker
from inference.models import ModelVersion, Provider, Task
from inference.models.providers import DROPPED_PARAMETERS

_PATHS: dict[str, str] = {Task.CHAT: "/chat/completions", Task.EMBEDDINGS: "/embeddings"}
# What the cache key leaves out of the body: the inputs are keyed apart, the rest never changes an answer.
_UNKEYED = ("model", "messages", "input", "stream", "user")

logger = logging.getLogger(__name__)


def check(version: ModelVersion, texts: list[str]) -> None:
    """Messages are bounded by the chat serializer, parameters by `estimate` (before anything is reserved)."""


def cache_key(texts: list[str], body: dict) -> dict:
    temperature = body.get("temperature")
    return {
        "inputs": body.get("messages") or body.get("input"),
        "params": {k: v for k, v in body.items() if k not in _UNKEYED},
        # OpenAI's default temperature is 1: only an explicit 0 is deterministic.
        "sampled": "messages" in body and (temperature is None or temperature > 0),
    }


def to_cache(answer: bytes) -> str:
    # The cache holds JSON: the body as text (JSON is UTF-8, and this one was parsed for its usage).
    return answer.decode()


def from_cache(entry: str) -> bytes:
    return entry.encode()


def serve(ctx: RequestContext, versions: list[ModelVersion], texts: list[str], body: dict) -> bytes:
    """The first answer of the candidates, in order: the upstream's JSON body, as it sent it."""
    return _first_success(ctx, versions, body, stream=False)


def open_stream(ctx: RequestContext, versions: list[ModelVersion], body: dict):
    """Start a stream on the first candidate that answers; failures before its first event are
    retried or fall back like any call. Returns what `relay` needs."""
    # Always ask for usage: the cost is needed whether or not the client wants it.
    upstream_body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
    return _first_success(ctx, versions, upstream_body, stream=True)


def estimate(versions: list[ModelVersion], texts: list[str], body: dict) -> dict:
    """Upper bounds to reserve: a token is at least one byte of the prompt, plus a few per
    message, plus `n` answers of max_tokens each; for the most costly candidate. A request
    the first candidate's provider or cap refuses is a 400 here, before anything is reserved."""
    if refusal := _refusal(versions[0], body):
        raise InvalidInput(f"Not accepted for this model: {', '.join(refusal)}.", fields=refusal)
    messages = body.get("messages") or []
    prompt_tokens = len("\n".join(texts).encode()) + 4 * len(messages) + 2
    answers = (body.get("n") or 1) if messages else 0
    tokens = max(prompt_tokens + answers * _max_tokens(version, body) for version in versions)
    cost = max(pricing.cost_of(version, prompt_tokens, answers * _max_tokens(version, body)) for version in versions)
    return {"tokens": tokens, "cost": cost}


def _provider(version: ModelVersion) -> Provider:
    assert version.provider is not None  # ModelVersion.clean() requires one for an upstream version
    return version.provider


def _refusal(version: ModelVersion, body: dict) -> dict[str, list[str]]:
    """Why the version's provider may not receive this request (field -> errors); empty if it may."""
    allowed = set(_provider(version).allowed_parameters) | {"model"}  # the model is always the version's
    refused = {
        name: ["This parameter is not accepted for this model."]
        for name in sorted(body)
        if name not in allowed and name not in DROPPED_PARAMETERS
    }
    requested = _requested_max_tokens(body)
    if "messages" in body and requested is not None and requested > version.max_tokens_cap:
        field = "max_completion_tokens" if body.get("max_completion_tokens") else "max_tokens"
        refused[field] = [f"At most {version.max_tokens_cap} for this model."]
    return refused


def _requested_max_tokens(body: dict) -> int | None:
    return body.get("max_completion_tokens") or body.get("max_tokens")


def _max_tokens(version: ModelVersion, body: dict) -> int:
    return _requested_max_tokens(body) or version.default_max_tokens


def _upstream_body(version: ModelVersion, body: dict) -> dict:
    """What the provider receives: the allowed parameters, the upstream model name, and for a
    chat the max_tokens it may answer with (the version's default when the request sets none)."""
    allowed = set(_provider(version).allowed_parameters)
    bounded = {name: value for name, value in body.items() if name in allowed}
    bounded["model"] = version.upstream_model
    if "messages" in body and _requested_max_tokens(body) is None:
        bounded["max_tokens"] = version.default_max_tokens
    return bounded


class _DeadlinePassed(Exception):
    """The call's deadline passed: neither retried nor tried on another version."""


def _first_success(ctx: RequestContext, versions: list[ModelVersion], body: dict, *, stream: bool):
    release_connection()
    path = _PATHS[versions[0].task]
    deadline = time.monotonic() + settings.GATEWAY_UPSTREAM_DEADLINE_S
    all_open = True
    for position, version in enumerate(versions):
        breaker = Breaker(version.pk)
        if not breaker.allow():
            ctx.route.append(f"{version}: skipped, circuit open")
            continue
        if position and (refusal := _refusal(version, body)):
            ctx.route.append(f"{version}: skipped, does not accept {', '.join(refusal)}")
            continue
        all_open = False
        ctx.set_version(version)
        ctx.provider = _provider(version).name
        payload = json.dumps(_upstream_body(version, body)).encode()
        started = time.perf_counter()
        try:
            result = upstream_client.with_retries(
                _provider(version),
                partial(_attempt, ctx, version, path, payload, stream, deadline),
                on_retry=partial(_count_retry, version),
            )
        except upstream_client.UpstreamRejected as exc:
            ctx.route.append(f"{version}: rejected the request")
            # The provider's words name it and may echo its configuration: the log keeps them.
            logger.warning("Request %s: %s", ctx.request_id, exc)
            raise UpstreamRefused() from exc
        except _DeadlinePassed:
            ctx.route.append(f"{version}: deadline of {settings.GATEWAY_UPSTREAM_DEADLINE_S:g} s passed")
            raise UpstreamFailed("No upstream answered within the gateway's deadline.") from None
        except upstream_client.UpstreamError as exc:
            breaker.record_failure()
            ctx.route.append(f"{version}: {exc}")
            logger.warning("Upstream version %s failed: %s", version, exc)
            continue
        finally:
            # Attempts and backoff waits are the upstream's share of the latency, not the gateway's.
            ctx.inference_ms += (time.perf_counter() - started) * 1000
        breaker.record_success()
        ctx.route.append(f"{version}: ok")
        ctx.fallback_used = position > 0
        if stream:
            return (*result, version, time.monotonic() + settings.GATEWAY_STREAM_DEADLINE_S)
        _charge_from_usage(ctx, version, json.loads(result).get("usage"))
        return result
    if all_open:
        raise UpstreamUnavailable(retry_after=max(1, round(settings.BREAKER_COOLDOWN_S)))
    raise UpstreamFailed()


def _attempt(ctx: RequestContext, version: ModelVersion, path: str, payload: bytes, stream: bool, deadline: float):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlinePassed()
    ctx.attempts += 1
    # Each read may wait the provider's timeout, but no longer than the call has left.
    provider = copy.copy(_provider(version))
    provider.timeout_s = min(provider.timeout_s, remaining)
    response = upstream_client.post(provider, path, payload, stream=stream)
    if not stream:
        return response.data
    # Read up to the first event now, so that a failure before the first byte can be retried.
    # One line iterator throughout: it buffers the rest of the chunk it has read.
    lines = iter(response)
    first_lines = []
    try:
        for line in lines:
            first_lines.append(line)
            if line.startswith(b"data:"):
                ctx.ttft_ms = (time.perf_counter() - ctx.started) * 1000
                return response, itertools.chain(first_lines, lines)
    except urllib3.exceptions.HTTPError as exc:
        raise upstream_client.UpstreamError(f"{version.provider}: stream broke before its first event") from exc
    raise upstream_client.UpstreamError(f"{version.provider}: stream ended before its first event")


def _count_retry(version: ModelVersion, error: upstream_client.UpstreamError) -> None:
    reason = str(error.status) if getattr(error, "status", None) else "connection"
    families.UPSTREAM_RETRIES.labels(version.name, version.version, reason).inc()


def relay(
    ctx: RequestContext, opened, body: dict, prompt: str, reservation: Reservation, guard: StreamFilter | None
) -> Iterator[bytes]:
    """The stream's events for the client, their content passed through `guard` (the content
    filter) when there is one. A stream that breaks after its first event ends with an SSE
    error event and the row is marked truncated; usage is settled when it ends."""
    response, lines, version, deadline = opened
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    usage = None
    content_chunks = 0
    started = time.perf_counter()
    finished = False
    try:
        for line in lines:
            if time.monotonic() > deadline:
                raise _DeadlinePassed()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            finished = data == b"[DONE]"
            if finished and guard is not None and (rest := guard.rest()) is not None:
                yield b"data: " + json.dumps(rest).encode() + b"\n\n"
            if finished and usage is None:
                # Some engines (llama.cpp's server) ignore include_usage: estimate, and say so.
                usage = _estimated_usage(prompt, content_chunks)
                ctx.usage_estimated = True
                if wants_usage:
                    chunk = {"object": "chat.completion.chunk", "choices": [], "usage": usage}
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            elif not finished:
                chunk = json.loads(data)
                if any(choice.get("delta", {}).get("content") for choice in chunk.get("choices") or ()):
                    content_chunks += 1
                if chunk.get("usage"):
                    usage = chunk["usage"]
                    if not wants_usage and not chunk.get("choices"):
                        continue  # the usage-only chunk the client did not ask for
                if guard is not None and (data := guard.event(chunk, data)) is None:
                    continue  # all of its content is held back for now
            yield b"data: " + data + b"\n\n"
        if not finished:
            raise upstream_client.UpstreamError(f"{version.provider}: stream ended without [DONE]")
    except (urllib3.exceptions.HTTPError, ValueError, upstream_client.UpstreamError) as exc:
        ctx.truncated = True
        ctx.error_type = "upstream_stream_broken"
        Breaker(version.pk).record_failure()
        logger.warning("Stream from %s broke after its first event: %s", version, exc)
        error = {
            "error": {
                "type": "upstream_stream_broken",
                "message": "The upstream stream broke; the answer is incomplete.",
                "request_id": str(ctx.request_id),
            }
        }
        yield b"data: " + json.dumps(error).encode() + b"\n\n"
    except _DeadlinePassed:
        ctx.truncated = True
        ctx.error_type = "stream_deadline"
        limit = settings.GATEWAY_STREAM_DEADLINE_S
        message = f"The stream passed the gateway's deadline of {limit:g} s; the answer is incomplete."
        error = {"error": {"type": "stream_deadline", "message": message, "request_id": str(ctx.request_id)}}
        yield b"data: " + json.dumps(error).encode() + b"\n\n"
    finally:
        if not finished:  # the rest of the body is unread: the connection cannot serve another call
            response.close()
        response.release_conn()
        ctx.inference_ms += (time.perf_counter() - started) * 1000  # relaying is waiting on the upstream
        _charge_from_usage(ctx, version, usage or _estimated_usage(prompt, content_chunks))
        reservation.settle()


def _estimated_usage(prompt: str, content_chunks: int) -> dict:
    """Token counts when the upstream reports none: one token per streamed content chunk
    (how OpenAI-style engines stream), about four characters per prompt token."""
    prompt_tokens = max(1, len(prompt) // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": content_chunks,
        "total_tokens": prompt_tokens + content_chunks,
    }


def _charge_from_usage(ctx: RequestContext, version: ModelVersion, usage: dict | None) -> None:
    usage = usage or {}
    pricing.charge(ctx, version, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
