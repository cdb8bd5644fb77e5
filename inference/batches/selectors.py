from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from gateway.models import APIKey
from inference.batches.models import BatchItem, BatchJob


def batch_jobs_visible_to(key: APIKey) -> QuerySet[BatchJob]:
    """The jobs a key may see and steer: those of its team's keys; a key with no team sees its
    own only (an owner's keys may serve different teams). The one place that decides who sees a job."""
    if key.team_id is not None:
        return BatchJob.objects.filter(api_key__team_id=key.team_id)
    return BatchJob.objects.filter(api_key=key)


def batch_job_visible_to(key: APIKey, job_id) -> BatchJob:
    """The job, or 404 for a job that does not exist and for one the key may not see alike."""
    job = batch_jobs_visible_to(key).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No batch job {job_id}.")
    return job


def batch_items_in_order(job: BatchJob) -> QuerySet[BatchItem]:
    return job.items.order_by("index")


def batch_items_in_pages(job: BatchJob, page_size: int = 1000):
    """Every item in index order, read a page at a time (for downloads of any size)."""
    after = -1
    while page := list(batch_items_in_order(job).filter(index__gt=after)[:page_size]):
        yield from page
        after = page[-1].index
