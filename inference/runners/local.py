"""The run step for local models: the version's micro-batcher in this process answers.

The pipeline calls `check`, `cache_key`, `estimate`, `serve`, `to_cache` and `from_cache`
(inference/runners/upstream.py has the same six); shadow copies call `run` alone.
"""

import logging
import time
from dataclasses import asdict

from django.conf import settings

from gateway.api.errors import InvalidInput, ModelFailed, ModelUnavailable
from gateway.db import release_connection
from gateway.record.context import RequestContext
from inference import pool, pricing
from inference.backends import Output
from inference.backends.encoder import most_tokens
from inference.batching import Overloaded
from inference.models import ModelVersion

logger = logging.getLogger(__name__)


def check(version: ModelVersion, texts: list[str]) -> None:
    for text in texts:
        if len(text) > version.max_input_chars:
            raise InvalidInput(
                fields={"text": [f"Ensure this field has no more than {version.max_input_chars} characters."]}
            )


def cache_key(texts: list[str], body: dict | None) -> dict:
    return {"inputs": texts}


def estimate(versions: list[ModelVersion], texts: list[str], body: dict | None) -> dict:
    """Upper bounds to reserve: an encoder's tokens, counted without tokenizing."""
    tokens = sum(most_tokens(text) for text in texts)
    return {"tokens": tokens, "cost": pricing.cost_of(versions[0], tokens, 0)}


def serve(ctx: RequestContext, versions: list[ModelVersion], texts: list[str], body: dict | None) -> list[Output]:
    return run(ctx, versions[0], texts)


def run(ctx: RequestContext, version: ModelVersion, texts: list[str]) -> list[Output]:
    """Answer on the version, and put the tokens and their cost on ctx."""
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
        logger.exception("%s failed on request %s", version, ctx.shadow_of or ctx.request_id)
        raise ModelFailed() from exc
    finally:
        ctx.inference_ms += (time.perf_counter() - started) * 1000
    pricing.charge(
        ctx,
        version,
        sum(output.input_tokens for output in outputs),
        sum(output.output_tokens for output in outputs),
    )
    if len(outputs) == 1:
        ctx.output_label = str(outputs[0].result.get("label", ""))
    return outputs


def to_cache(outputs: list[Output]) -> list[dict]:
    # Plain dicts, not pickled classes: entries must outlive a deploy that changes Output.
    return [asdict(output) for output in outputs]


def from_cache(entry: list[dict]) -> list[Output]:
    return [Output(**output) for output in entry]
