"""The request path for local models, composed in one place. Views call these.

route (version, model scope) -> check input -> response cache -> admission (tokens per
minute, budgets: reserve) -> infer -> cost -> settle -> store in the cache. Requests per
minute are checked before the view runs (gateway/rate_limits.py, a DRF throttle).
"""

import logging
from dataclasses import asdict

from django.conf import settings
from django.db import connection
from rest_framework.exceptions import PermissionDenied, ValidationError

from gateway import admission, response_cache
from gateway.context import RequestContext
from gateway.errors import ModelFailed, ModelNotFound, ModelUnavailable
from inference import pool, registry
from inference.backends import Output
from inference.backends.encoder import most_tokens
from inference.batching import Overloaded
from inference.models import ModelVersion, Task
from inference.pricing import cost_of

logger = logging.getLogger(__name__)


def classify(
    *, ctx: RequestContext, text: str, model_ref: str | None, cache_control: str = ""
) -> tuple[ModelVersion, dict]:
    version = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_CLASSIFIER, Task.TEXT_CLASSIFICATION)
    _check_length(version, [text])
    ctx.input_text = text
    (output,) = _answer(ctx, version, [text], cache_control)
    return version, output.result


def embed(
    *, ctx: RequestContext, texts: list[str], model_ref: str | None, cache_control: str = ""
) -> tuple[ModelVersion, list[Output]]:
    version = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_EMBEDDINGS, Task.EMBEDDINGS)
    _check_length(version, texts)
    ctx.input_text = "\n".join(texts)
    return version, _answer(ctx, version, texts, cache_control)


def _route(ctx: RequestContext, model_ref: str, task: str) -> ModelVersion:
    ctx.model_name = model_ref.partition(":")[0]
    if not ctx.api_key.allows_model(ctx.model_name):
        raise PermissionDenied(f"This API key may not use the model '{ctx.model_name}'.")
    version = registry.resolve(model_ref, task=task)
    if version is None:
        raise ModelNotFound(f"No {task} model '{model_ref}' is being served.")
    ctx.set_version(version)
    return version


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
    with admission.admitted(ctx, tokens=tokens, cost=cost_of(version, tokens, 0)):
        outputs = _infer(ctx, version, texts)
    # Plain dicts, not pickled classes: entries must outlive a deploy that changes Output.
    cached.store([asdict(output) for output in outputs])
    return outputs


def _infer(ctx: RequestContext, version: ModelVersion, texts: list[str]) -> list[Output]:
    try:
        batcher = pool.batcher_for(version)
    except Exception as exc:
        logger.exception("Could not load %s", version)
        raise ModelUnavailable(f"The model {version} could not be loaded.") from exc
    # Hand the database connection back to the pool while the model runs: threads
    # waiting on a model must not hold every pooled connection.
    if not connection.in_atomic_block:
        connection.close()
    try:
        outputs = batcher.submit_many(texts, settings.GATEWAY_INFERENCE_TIMEOUT_S)
    except Overloaded as exc:
        raise ModelUnavailable(str(exc)) from exc
    except Exception as exc:
        raise ModelFailed() from exc
    ctx.input_tokens = sum(output.input_tokens for output in outputs)
    ctx.output_tokens = sum(output.output_tokens for output in outputs)
    ctx.cost_usd = cost_of(version, ctx.input_tokens, ctx.output_tokens)
    return outputs
