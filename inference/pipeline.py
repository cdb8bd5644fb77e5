"""The request path for local models, composed in one place. Views call these.

route (version, model scope) -> check input -> response cache -> admission (tokens per
minute, budgets: reserve) -> infer -> cost -> settle -> store in the cache. Requests per
minute are checked before the view runs (gateway/limits/rate_limits.py, a DRF throttle).
"""

import logging
import time
from dataclasses import asdict

from django.conf import settings
from rest_framework.exceptions import PermissionDenied, ValidationError

from experiments import shadow, traffic_split
from gateway.api.errors import ModelFailed, ModelNotFound, ModelUnavailable
from gateway.caching import response_cache
from gateway.db import release_connection
from gateway.limits import admission
from gateway.record.context import RequestContext
from inference import pool, pricing, registry
from inference.backends import Output
from inference.backends.encoder import most_tokens
from inference.batching import Overloaded
from inference.models import ModelVersion, Task

logger = logging.getLogger(__name__)


def classify(
    *,
    ctx: RequestContext,
    text: str,
    model_ref: str | None,
    user_id: str | None = None,
    cache_control: str = "",
) -> tuple[ModelVersion, dict]:
    version, shadows = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_CLASSIFIER, Task.TEXT_CLASSIFICATION, user_id)
    _check_length(version, [text])
    ctx.input_text = text
    (output,) = _answer(ctx, version, [text], cache_control)
    ctx.output_label = output.result["label"]
    shadow.mirror(ctx, shadows, [text])
    return version, output.result


def embed(
    *,
    ctx: RequestContext,
    texts: list[str],
    model_ref: str | None,
    user_id: str | None = None,
    cache_control: str = "",
) -> tuple[ModelVersion, list[Output]]:
    version, shadows = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_EMBEDDINGS, Task.EMBEDDINGS, user_id)
    _check_length(version, texts)
    ctx.input_text = "\n".join(texts)
    outputs = _answer(ctx, version, texts, cache_control)
    shadow.mirror(ctx, shadows, texts)
    return version, outputs


def route(*, ctx: RequestContext, model_ref: str | None, task: str) -> ModelVersion:
    """The version a request with this key would run on; batch jobs pin it at submission."""
    default = settings.GATEWAY_DEFAULT_EMBEDDINGS if task == Task.EMBEDDINGS else settings.GATEWAY_DEFAULT_CLASSIFIER
    return _route(ctx, model_ref or default, task, user_id=None)[0]


def _route(ctx: RequestContext, model_ref: str, task: str, user_id: str | None) -> tuple[ModelVersion, tuple]:
    """`name:version` is served as pinned; a bare name goes to its running experiment's variant for
    this unit (X-User-ID, else the key) if there is one, else to its production version.
    Returns the version and the shadow variants that get a mirrored copy."""
    name, _, pinned = model_ref.partition(":")
    ctx.model_name = name
    if not ctx.api_key.allows_model(name):
        raise PermissionDenied(f"This API key may not use the model '{name}'.")
    assigned = None
    if not pinned:
        unit = traffic_split.unit_of(user_id=user_id, key_prefix=ctx.key_prefix)
        assigned = traffic_split.assign(model_name=name, task=task, unit=unit, request_id=ctx.request_id)
    if assigned is not None:
        ctx.experiment, ctx.variant, ctx.unit = assigned.experiment, assigned.variant.name, assigned.unit
        version = assigned.variant.model_version
    else:
        version = registry.resolve(model_ref, task=task)
    if version is None:
        raise ModelNotFound(f"No {task} model '{model_ref}' is being served.")
    ctx.set_version(version)
    return version, assigned.shadows if assigned else ()


def _check_length(version: ModelVersion, texts: list[str]) -> None:
    for text in texts:
        if len(text) > version.max_input_chars:
            raise ValidationError(
                {"text": [f"Ensure this field has no more than {version.max_input_chars} characters."]}
            )


def _answer(ctx: RequestContext, version: ModelVersion, texts: list[str], cache_control: str) -> list[Output]:
    cached = response_cache.entry(ctx, version, task=version.task, inputs=texts, cache_control=cache_control)
    hit = cached.lookup()
    if hit is not None:
        return [Output(**output) for output in hit]
    tokens = sum(most_tokens(text) for text in texts)
    with admission.admitted(ctx, tokens=tokens, cost=pricing.cost_of(version, tokens, 0)):
        outputs = _infer(ctx, version, texts)
    # Plain dicts, not pickled classes: entries must outlive a deploy that changes Output.
    cached.store([asdict(output) for output in outputs])
    return outputs


def _infer(ctx: RequestContext, version: ModelVersion, texts: list[str]) -> list[Output]:
    # Before the model loads, too: threads waiting on a loading model held every connection.
    release_connection()
    try:
        batcher = pool.batcher_for(version)
    except Exception as exc:
        logger.exception("Could not load %s", version)
        raise ModelUnavailable(f"The model {version} could not be loaded.") from exc
    started = time.perf_counter()
    try:
        outputs = batcher.submit_many(texts, settings.GATEWAY_INFERENCE_TIMEOUT_S)
    except Overloaded as exc:
        raise ModelUnavailable(str(exc)) from exc
    except Exception as exc:
        raise ModelFailed() from exc
    finally:
        ctx.inference_ms += (time.perf_counter() - started) * 1000
    pricing.charge(
        ctx,
        version,
        sum(output.input_tokens for output in outputs),
        sum(output.output_tokens for output in outputs),
    )
    return outputs
