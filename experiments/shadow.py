"""Shadow answers: a mirrored copy of a request, answered by another version off the request
path and logged as its own RequestLog row (`shadow_of` = the request), never returned."""

import logging
import time
from dataclasses import dataclass

from experiments import background
from experiments.models import Experiment, Variant
from gateway.api import errors
from gateway.api.errors import GatewayError
from gateway.record import request_log
from gateway.record.context import RequestContext
from inference.runners import local

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Copy:
    parent: RequestContext
    experiment: Experiment
    variant: Variant
    texts: tuple[str, ...]


def mirror(ctx: RequestContext, variants, texts: list[str]) -> None:
    """Hand each shadow variant a copy of the request; returns at once, whatever happens to the copies."""
    for variant in variants:
        # Shadow variants come from the experiment the request was assigned to.
        copy = _Copy(ctx, ctx.experiment, variant, tuple(texts))  # type: ignore[arg-type]
        if not background.submit(_answer, copy):
            logger.warning("Shadow copy of %s for %s dropped: the background backlog is full", ctx.request_id, variant)


def _answer(copy: _Copy) -> None:
    parent, version = copy.parent, copy.variant.model_version
    # The caller's key is named (key_prefix) but not charged: the caller never asked for this answer.
    ctx = RequestContext(
        key_prefix=parent.key_prefix,
        endpoint=parent.endpoint,
        experiment=copy.experiment,
        variant=copy.variant.name,
        unit=parent.unit,
        shadow_of=parent.request_id,
    )
    ctx.set_version(version)
    ctx.input_text = "\n".join(copy.texts)
    started = time.perf_counter()
    status_code = _run(ctx, version, list(copy.texts))
    latency_ms = (time.perf_counter() - started) * 1000
    request_log.write(
        ctx, method="POST", endpoint=ctx.endpoint, client_ip=None, status_code=status_code, latency_ms=latency_ms
    )


def _run(ctx: RequestContext, version, texts: list[str]) -> int:
    """Answer on the version through the live path's local runner; the status code the answer would have had."""
    try:
        local.run(ctx, version, texts)
    except GatewayError as exc:
        ctx.error_type = exc.error_type
        return errors.status_of(exc)
    return 200
