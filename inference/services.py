"""The request path for local models: route, check, infer, cost. Views call these."""

import logging

from django.conf import settings
from rest_framework.exceptions import PermissionDenied, ValidationError

from experiments import routing, shadow
from gateway.context import RequestContext
from gateway.db import release_connection
from gateway.errors import ModelFailed, ModelNotFound, ModelUnavailable
from inference import pool, pricing, registry
from inference.backends import Output
from inference.batching import Overloaded
from inference.models import ModelVersion, Task

logger = logging.getLogger(__name__)


def classify(
    *, ctx: RequestContext, text: str, model_ref: str | None, user_id: str | None = None
) -> tuple[ModelVersion, dict]:
    version, shadows = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_CLASSIFIER, Task.TEXT_CLASSIFICATION, user_id)
    _check_length(version, [text])
    ctx.input_text = text
    (output,) = _infer(ctx, version, [text])
    ctx.output_label = output.result["label"]
    shadow.mirror(ctx, shadows, [text])
    return version, output.result


def embed(
    *, ctx: RequestContext, texts: list[str], model_ref: str | None, user_id: str | None = None
) -> tuple[ModelVersion, list[Output]]:
    version, shadows = _route(ctx, model_ref or settings.GATEWAY_DEFAULT_EMBEDDINGS, Task.EMBEDDINGS, user_id)
    _check_length(version, texts)
    ctx.input_text = "\n".join(texts)
    outputs = _infer(ctx, version, texts)
    shadow.mirror(ctx, shadows, texts)
    return version, outputs


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
        unit = routing.unit_of(user_id=user_id, key_prefix=ctx.key_prefix)
        assigned = routing.assign(model_name=name, task=task, unit=unit, request_id=ctx.request_id)
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


def _infer(ctx: RequestContext, version: ModelVersion, texts: list[str]) -> list[Output]:
    try:
        batcher = pool.batcher_for(version)
    except Exception as exc:
        logger.exception("Could not load %s", version)
        raise ModelUnavailable(f"The model {version} could not be loaded.") from exc
    release_connection()
    try:
        outputs = batcher.submit_many(texts, settings.GATEWAY_INFERENCE_TIMEOUT_S)
    except Overloaded as exc:
        raise ModelUnavailable(str(exc)) from exc
    except Exception as exc:
        raise ModelFailed() from exc
    pricing.charge(
        ctx,
        version,
        sum(output.input_tokens for output in outputs),
        sum(output.output_tokens for output in outputs),
    )
    return outputs
