from datetime import timedelta

from celery import shared_task
from django.conf import settings

from inference.batches import processing, services

MAX_RETRIES = 5


# acks_late + reject_on_worker_lost: the message is acknowledged only once the chunk is
# stored, so a worker that dies mid-chunk leaves it to be delivered again (processing is
# idempotent). Repeated here, though settings set them for every task, because this task's
# correctness rests on them.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=MAX_RETRIES)
def process_batch_chunk(self, job_id: str, start: int, stop: int) -> None:
    try:
        services.batch_chunk_process(job_id=job_id, start=start, stop=stop)
    except processing.TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            reason = f"Gave up after {self.max_retries} retries: {processing.failure_reason(job_id, exc)}"
            services.batch_job_fail(job_id=job_id, reason=reason)
            return
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc


# Sent by Celery beat every GATEWAY_BATCH_STALL_CHECK_S (settings.CELERY_BEAT_SCHEDULE).
@shared_task(ignore_result=True)
def requeue_stalled_batch_jobs() -> None:
    services.batch_jobs_requeue_stalled(stalled_for=timedelta(seconds=settings.GATEWAY_BATCH_STALLED_AFTER_S))
