"""Scheduled maintenance (CELERY_BEAT_SCHEDULE), routed to the `maintenance` queue."""

from celery import shared_task

from observability import retention, rollups


@shared_task
def refresh_rollups() -> int | None:
    return rollups.refresh()


@shared_task
def prune_request_log() -> int:
    return retention.prune_request_log()
