"""The request path for upstream versions: route, try each candidate under its circuit
breaker with retries, pass the JSON through, and cost the answer from its `usage`."""

import itertools
import json
import logging
import time
from collections.abc import Iterator
from functools import partial

import urllib3
from django.conf import settings
from rest_framework.exceptions import PermissionDenied, ValidationError

from experiments import traffic_split as experiment_routing
from gateway.api.errors import ModelNotFound, UpstreamFailed, UpstreamUnavailable
from gateway.caching import response_cache
from gateway.db import release_connection
from gateway.limits import admission
from gateway.metrics import families
from gateway.record.context import RequestContext
from inference import candidates, pricing, upstream_client
from inference.breaker import Breaker
from inference.models import ModelVersion, Task

logger = logging.getLogger(__name__)


def chat(ctx: RequestContext, body: dict, *, prompt: str, user_id: str | None = None, cache_control: str = "") -> bytes:
    """A non-streaming chat completion: the upstream's JSON body, as it sent it."""
    versions = _plan(ctx, body, task=Task.CHAT, prompt=prompt, user_id=user_id)
    return _answer(
        ctx, versions, body, task=Task.CHAT, path="/chat/completions", prompt=prompt, cache_control=cache_control
    )


def remote_embeddings(ctx: RequestContext, body: dict, *, user_id: str | None = None, cache_control: str = "") -> bytes:
    versions = _plan(ctx, body, task=Task.EMBEDDINGS, prompt="", user_id=user_id)
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return _answer(
        ctx,
        versions,
        body,
        task=Task.EMBEDDINGS,
        path="/embeddings",
        prompt="\n".join(texts),
        cache_control=cache_control,
    )


def chat_stream(ctx: RequestContext, body: dict, *, prompt: str, user_id: str | None = None) -> Iterator[bytes]:
    """A streaming chat completion as SSE bytes.

    Failures before the first event are retried or fall back like any call; the status is
    decided only once an upstream has started answering. A stream that breaks later ends
    with an SSE error event and the log row is marked truncated. Usage is reserved before
    the call and settled when the stream ends.
    """
    versions = _plan(ctx, body, task=Task.CHAT, prompt=prompt, user_id=user_id)
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    # Always ask for usage: the cost is needed whether or not the client wants it.
    upstream_body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
    reservation = admission.reserve(ctx, **_estimate(versions, body, prompt))
    try:
        response, lines, version = _first_success(ctx, versions, upstream_body, path="/chat/completions", stream=True)
    except BaseException:
        reservation.settle()
        raise
    return _relay(ctx, version, response, lines, wants_usage, prompt, reservation)


def _plan(ctx: RequestContext, body: dict, *, task: str, prompt: str, user_id: str | None) -> list[ModelVersion]:
    """The versions to try, in order: a pinned `name:version`; else a running experiment's
    variant for this unit; else the routing rule that matches; else production. Fallbacks follow."""
    model_ref = body["model"]
    name = model_ref.partition(":")[0]
    ctx.model_name = name
    if not ctx.api_key.allows_model(name):
        raise PermissionDenied(f"This API key may not use the model '{name}'.")
    assigned = None
    if ":" not in model_ref:
        unit = experiment_routing.unit_of(user_id=user_id, key_prefix=ctx.key_prefix)
        assigned = experiment_routing.assign(model_name=name, task=task, unit=unit, request_id=ctx.request_id)
    if assigned is not None:
        ctx.experiment, ctx.variant, ctx.unit = assigned.experiment, assigned.variant.name, assigned.unit
    versions, rule = candidates.candidates(
        model_ref,
        task=task,
        prompt=prompt,
        max_tokens=body.get("max_tokens"),
        primary=assigned.variant.model_version if assigned else None,
    )
    if not versions:
        raise ModelNotFound(f"No {task} model '{model_ref}' is being served.")
    if rule:
        ctx.routing_rule = rule.name
    ctx.set_version(versions[0])
    return versions


def _answer(ctx, versions, body, *, task, path, prompt, cache_control) -> bytes:
    """Cache, then admission (reserve, settle), then the upstreams in order."""
    params = {k: v for k, v in body.items() if k not in ("model", "messages", "input", "stream", "user")}
    temperature = body.get("temperature")
    entry = response_cache.entry(
        ctx,
        versions[0],
        task=task,
        inputs=body.get("messages") or body.get("input"),
        params=params,
        # OpenAI's default temperature is 1: only an explicit 0 is deterministic.
        sampled=task == Task.CHAT and (temperature is None or temperature > 0),
        cache_control=cache_control,
    )
    if (cached := entry.lookup()) is not None:
        return cached
    with admission.admitted(ctx, **_estimate(versions, body, prompt)):
        answer = _first_success(ctx, versions, body, path=path, stream=False)
    entry.store(answer)
    return answer


def _estimate(versions: list[ModelVersion], body: dict, prompt: str) -> dict:
    """Upper bounds to reserve: a token is at least one byte of the prompt, plus a few per
    message, plus the tokens the answer may use; priced at the dearest candidate."""
    messages = body.get("messages") or []
    prompt_tokens = len(prompt.encode()) + 4 * len(messages) + 2
    answer_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    if messages and not answer_tokens:
        answer_tokens = settings.GATEWAY_CHAT_MAX_TOKENS_ESTIMATE
    cost = max(pricing.cost_of(version, prompt_tokens, answer_tokens) for version in versions)
    return {"tokens": prompt_tokens + answer_tokens, "cost": cost}


def _first_success(ctx: RequestContext, versions: list[ModelVersion], body: dict, *, path: str, stream: bool):
    release_connection()
    all_open = True
    for position, version in enumerate(versions):
        breaker = Breaker(version.pk)
        if not breaker.allow():
            ctx.route.append(f"{version}: skipped, circuit open")
            continue
        all_open = False
        ctx.set_version(version)
        ctx.provider = version.provider.name
        payload = json.dumps({**body, "model": version.upstream_model}).encode()
        started = time.perf_counter()
        try:
            result = upstream_client.with_retries(
                version.provider,
                partial(_attempt, ctx, version, path, payload, stream),
                on_retry=partial(_count_retry, version),
            )
        except upstream_client.UpstreamRejected as exc:
            ctx.route.append(f"{version}: rejected the request")
            raise ValidationError({"upstream": [str(exc)]}) from exc
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
            return (*result, version)
        _charge_from_usage(ctx, version, json.loads(result).get("usage"))
        return result
    if all_open:
        raise UpstreamUnavailable()
    raise UpstreamFailed()


def _attempt(ctx: RequestContext, version: ModelVersion, path: str, payload: bytes, stream: bool):
    ctx.attempts += 1
    response = upstream_client.post(version.provider, path, payload, stream=stream)
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


def _count_retry(version: ModelVersion, error: Exception) -> None:
    reason = str(error.status) if getattr(error, "status", None) else "connection"
    families.UPSTREAM_RETRIES.labels(version.name, version.version, reason).inc()


def _relay(ctx, version, response, lines, wants_usage, prompt, reservation) -> Iterator[bytes]:
    usage = None
    content_chunks = 0
    started = time.perf_counter()
    try:
        finished = False
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            finished = data == b"[DONE]"
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
    finally:
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
