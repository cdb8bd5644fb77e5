"""The request path for local models: route, check, infer, cost. Views call these."""

import logging
import time

from django.conf import settings
from rest_framework.exceptions import PermissionDenied, ValidationError

from gateway.context import RequestContext
from gateway.db import release_connection
from gateway.errors import ModelFailed, ModelNotFound, ModelUnavailable
from inference import pool, pricing, registry
from inference.backends import Output
from inference.batching import Overloaded
from inference.models import ModelVersion, Task

logger = logging.getLogger(__name__)


def classify(*, ctx: RequestContext, text: str, model_ref: str | None) -> tuple[ModelVersion, dict]:
    version = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_CLASSIFIER, Task.TEXT_CLASSIFICATION)
    _check_length(version, [text])
    ctx.input_text = text
    (output,) = _infer(ctx, version, [text])
    return version, output.result


def embed(*, ctx: RequestContext, texts: list[str], model_ref: str | None) -> tuple[ModelVersion, list[Output]]:
    version = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_EMBEDDINGS, Task.EMBEDDINGS)
    _check_length(version, texts)
    ctx.input_text = "\n".join(texts)
    return version, _infer(ctx, version, texts)


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


def _infer(ctx: RequestContext, version: ModelVersion, texts: list[str]) -> list[Output]:
    try:
        batcher = pool.batcher_for(version)
    except Exception as exc:
        logger.exception("Could not load %s", version)
        raise ModelUnavailable(f"The model {version} could not be loaded.") from exc
    release_connection()
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
