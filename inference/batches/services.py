"""Batch job life cycle: submit, process a chunk, cancel, retry failed items, fail.

Items are the unit of truth. A chunk stores its items' outcomes with a conditional
UPDATE (`status = pending`) in one transaction with their RequestLog rows and the job's
counters, so a chunk run twice (a worker killed before acknowledging it, a redelivery)
stores, logs and counts each item once. Job status changes are conditional UPDATEs too:
whoever changes zero rows lost a race and leaves the job alone.
"""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from gateway.api.errors import JobFinished, QueueUnavailable
from gateway.filters import content
from gateway.models import APIKey, RequestLog
from gateway.record.context import RequestContext
from gateway.record.request_log import log_row
from inference import pipeline
from inference.batches import processing, tasks
from inference.batches.models import ACTIVE_STATUSES, BatchItem, BatchJob, ItemStatus, JobStatus

logger = logging.getLogger(__name__)

# RequestLog.method of an item's row: tells batch work apart from API calls on the same key.
LOG_METHOD = "BATCH"


def batch_job_submit(
    *, ctx: RequestContext, key: APIKey, texts: list[str], task: str, model_ref: str | None
) -> BatchJob:
    """Store the job and its items, then queue one task per chunk. Raises the API's routing errors.

    Inputs are stored as the content filter leaves them: the model reads the filtered text."""
    version = pipeline.route(ctx=ctx, model_ref=model_ref, task=task)
    policy = content.policy_for(ctx, version)
    texts = [content.filter_text(ctx, policy, text, target="batch_input") for text in texts]
    with transaction.atomic():
        job = BatchJob.objects.create(
            api_key=key,
            key_prefix=key.prefix,
            task=task,
            model_version=version,
            model_ref=str(version),
            total_items=len(texts),
            chunk_size=settings.GATEWAY_BATCH_CHUNK_SIZE,
        )
        BatchItem.objects.bulk_create(
            [BatchItem(job=job, index=index, text=text) for index, text in enumerate(texts)], batch_size=1000
        )
        # A worker must find the rows, so the chunks are queued once they are committed.
        transaction.on_commit(lambda: _queue_new_job(job))
    job.refresh_from_db()  # run already where jobs run eagerly (the embedded default)
    return job


def batch_chunk_process(*, job_id: uuid.UUID | str, start: int, stop: int) -> None:
    """Run the still-pending items with index in [start, stop); raises TRANSIENT_ERRORS to be retried."""
    job = BatchJob.objects.select_related("api_key").filter(pk=job_id).first()
    if job is None or not job.is_active:
        return  # deleted, cancelled or failed: the remaining chunks stop here
    refusal = job.api_key.refusal_reason() if job.api_key else "The job's API key was deleted."
    if refusal:
        batch_job_fail(job_id=job.pk, reason=refusal)
        return
    items = list(job.items.filter(index__gte=start, index__lt=stop, status=ItemStatus.PENDING).order_by("index"))
    if items:
        BatchJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=timezone.now()
        )
        outcomes = processing.run_items(job, items)
        _store(job, [outcome for outcome in outcomes if outcome.halt is None])
        halts = [outcome.halt for outcome in outcomes if outcome.halt is not None]
        job_wide = [exc for exc in halts if isinstance(exc, processing.JOB_WIDE_ERRORS)]
        if job_wide:
            batch_job_fail(job_id=job.pk, reason=job_wide[0].message)
            return
        if halts:
            raise halts[0]
    _complete_if_done(job)


def batch_job_cancel(*, job: BatchJob) -> BatchJob:
    """Stop a job: chunks not yet started skip their items; one already running still stores its own."""
    cancelled = BatchJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now()
    )
    job.refresh_from_db()
    if not cancelled:
        raise JobFinished(f"The batch job is already {job.status}.")
    return job


def batch_job_retry_failed(*, job: BatchJob) -> int:
    """Put failed items back to pending and queue the chunks holding pending items; returns how many were reset.

    Also resumes a job whose queued tasks were lost (e.g. a broker restarted without persistence).
    """
    if job.status == JobStatus.CANCELLED:
        raise JobFinished("A cancelled job is not retried.")
    with transaction.atomic():
        failed = list(job.items.select_for_update().filter(status=ItemStatus.FAILED))
        for item in failed:
            item.status, item.error_type, item.error_message, item.finished_at = ItemStatus.PENDING, "", "", None
            item.request_id = uuid.uuid4()  # the failed attempt keeps its own RequestLog row
        BatchItem.objects.bulk_update(
            failed, ["status", "error_type", "error_message", "finished_at", "request_id"], batch_size=1000
        )
        pending = list(job.items.filter(status=ItemStatus.PENDING).values_list("index", flat=True))
        if pending:
            BatchJob.objects.filter(pk=job.pk).update(
                failed_items=F("failed_items") - len(failed),
                status=JobStatus.RUNNING if job.started_at else JobStatus.QUEUED,
                finished_at=None,
                error="",
                last_activity_at=timezone.now(),
            )
            transaction.on_commit(lambda: _queue_chunks(job, job.chunk_starts(pending)))
    return len(failed)


def batch_job_fail(*, job_id: uuid.UUID | str, reason: str) -> None:
    logger.warning("Batch %s failed: %s", job_id, reason)
    BatchJob.objects.filter(pk=job_id, status__in=ACTIVE_STATUSES).update(
        status=JobStatus.FAILED, error=reason, finished_at=timezone.now()
    )


def batch_jobs_requeue_stalled(*, stalled_for: timedelta) -> int:
    """Queue again the pending chunks of active jobs that made no progress for `stalled_for`.

    A chunk's message can be lost: kombu's Redis transport takes it off the queue before it
    records it as unacknowledged, so a worker killed in between loses it for good, and a Redis
    restart without persistence loses every queued message. The items say what is left, and
    processing is idempotent, so queueing again is safe; a job merely waiting behind others
    gets a few duplicate messages that find nothing to do. Returns how many jobs were requeued.
    """
    now = timezone.now()
    requeued = 0
    for job in BatchJob.objects.filter(status__in=ACTIVE_STATUSES, last_activity_at__lt=now - stalled_for):
        # Checks may overlap (several beats, a slow run): the one whose conditional UPDATE
        # wins requeues, and the job's next look comes a full period later.
        if not BatchJob.objects.filter(pk=job.pk, last_activity_at=job.last_activity_at).update(last_activity_at=now):
            continue
        pending = list(job.items.filter(status=ItemStatus.PENDING).values_list("index", flat=True))
        if not pending:  # its last chunk stored everything, then its worker died
            _complete_if_done(job)
            continue
        logger.warning(
            "Batch %s made no progress since %s; queueing %d items again", job.pk, job.last_activity_at, len(pending)
        )
        _queue_chunks(job, job.chunk_starts(pending))
        requeued += 1
    return requeued


def _queue_new_job(job: BatchJob) -> None:
    try:
        _queue_chunks(job, job.chunk_starts())
    except QueueUnavailable:
        # Refused, not accepted: chunks already queued will find the job failed and skip.
        batch_job_fail(job_id=job.pk, reason="The job could not be queued: the broker is unreachable.")
        raise


def _queue_chunks(job: BatchJob, starts: list[int]) -> None:
    try:
        for start in starts:
            tasks.process_batch_chunk.delay(str(job.pk), start, job.chunk_stop(start))
    except BrokerError as exc:
        raise QueueUnavailable() from exc


def _store(job: BatchJob, outcomes: list[processing.Outcome]) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Only a still-pending item takes the outcome: a second run of the chunk stores nothing.
        stored = [
            outcome
            for outcome in outcomes
            if BatchItem.objects.filter(pk=outcome.item.pk, status=ItemStatus.PENDING).update(
                status=outcome.item_status,
                result=outcome.result,
                error_type=outcome.ctx.error_type,
                error_message=outcome.error_message,
                finished_at=now,
            )
        ]
        if not stored:
            return
        RequestLog.objects.bulk_create(
            [
                log_row(
                    outcome.ctx,
                    method=LOG_METHOD,
                    endpoint=job.log_endpoint,
                    status_code=outcome.status_code,
                    latency_ms=outcome.latency_ms,
                )
                for outcome in stored
            ]
        )
        succeeded = sum(outcome.item_status == ItemStatus.SUCCEEDED for outcome in stored)
        BatchJob.objects.filter(pk=job.pk).update(
            succeeded_items=F("succeeded_items") + succeeded,
            failed_items=F("failed_items") + len(stored) - succeeded,
            cost_usd=F("cost_usd") + sum(outcome.ctx.cost_usd for outcome in stored),
            last_activity_at=now,
        )


def _complete_if_done(job: BatchJob) -> None:
    # Runs after this chunk committed, so the last chunk to commit sees no pending item left.
    if not job.items.filter(status=ItemStatus.PENDING).exists():
        BatchJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(
            status=JobStatus.COMPLETED, finished_at=timezone.now()
        )
