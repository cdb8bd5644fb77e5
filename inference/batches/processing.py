"""Run a chunk's items through the same inference path as the API, one RequestContext each.

Items run concurrently, one thread each, so the model's micro-batcher gathers them into
shared forward passes exactly as it gathers concurrent API requests. Each item is routed,
length-checked, inferred and costed by `inference.pipeline`; checks added to that path
apply to every item too, and `_run_item` is the place for per-request checks that live
elsewhere (docs/decisions/0010-batch-jobs.md, "Limits and budgets").
"""

import copy
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, connection

from gateway.api import errors
from gateway.api.errors import GatewayError, InvalidInput, ModelNotAllowed, ModelNotFound, ModelUnavailable
from gateway.record.context import RequestContext
from inference import embeddings, pipeline
from inference.batches.models import BatchItem, BatchJob, ItemStatus
from inference.models import Task

logger = logging.getLogger(__name__)

# Refusals that would be the same for every item: the job stops instead of failing each one.
JOB_WIDE_ERRORS = (ModelNotAllowed, ModelNotFound)
# Faults of the moment, not of the item (the model is overloaded, the database is out of
# reach): the item stays pending and its chunk is tried again later.
TRANSIENT_ERRORS = (ModelUnavailable, OperationalError, InterfaceError)


@dataclass
class Outcome:
    item: BatchItem
    ctx: RequestContext
    latency_ms: float
    status_code: int = 200
    result: dict | None = None
    error_message: str = ""
    # Set when the item has no outcome of its own: a job-wide refusal or a transient error.
    halt: Exception | None = None

    @property
    def item_status(self) -> str:
        return ItemStatus.SUCCEEDED if self.status_code == 200 else ItemStatus.FAILED


def run_items(job: BatchJob, items: list[BatchItem]) -> list[Outcome]:
    # The job's version was chosen, and a pin of the caller's checked, at submission
    # (pipeline.route): its items run on it even where that is a draft (an experiment's variant).
    key = copy.copy(job.api_key)
    key.may_pin_drafts = True
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="batch-item") as threads:
        return list(threads.map(lambda item: _run_item(job, key, item), items))


def failure_reason(job_id, exc: Exception) -> str:
    """What a job's owner reads of the transient failure it was given up on: the error itself
    (a database's host, port and user) goes to the log only."""
    logger.warning("Batch %s: gave up on a transient failure: %r", job_id, exc)
    return exc.message if isinstance(exc, GatewayError) else "The gateway's database could not be reached."


def _run_item(job: BatchJob, key, item: BatchItem) -> Outcome:
    ctx = RequestContext(request_id=item.request_id, holds_web_thread=False)
    ctx.set_key(key)
    started = time.perf_counter()
    outcome = Outcome(item=item, ctx=ctx, latency_ms=0.0)
    try:
        outcome.result = _infer(job, ctx, item.text)
    except (*JOB_WIDE_ERRORS, *TRANSIENT_ERRORS) as exc:
        outcome.halt = exc
    except GatewayError as exc:
        outcome.status_code, ctx.error_type = errors.status_of(exc), exc.error_type
        outcome.error_message = errors.message_of(exc)
    except Exception:
        logger.exception("Batch %s: item %s failed", job.pk, item.index)
        outcome.status_code, ctx.error_type, outcome.error_message = 500, "server_error", "The gateway failed on it."
    finally:
        # This thread borrowed a pooled connection to resolve the model: hand it back.
        connection.close()
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    return outcome


def _infer(job: BatchJob, ctx: RequestContext, text: str) -> dict:
    if not text.strip():  # what the API's serializers refuse before routing
        raise InvalidInput(fields={"text": ["This field may not be blank."]})
    call = pipeline.Call(task=job.task, model_ref=job.model_ref, texts=[text], body={"input": [text]})
    if job.task == Task.EMBEDDINGS:
        return {"embedding": embeddings.embed(ctx, call).vectors[0]}
    return pipeline.answer(ctx, call).result[0].result
