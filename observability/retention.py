"""Enforce the raw request log's retention without long locks: many small DELETEs.

Only rows already rolled up (older than the rollups' `final_before`) are deleted, so the
dashboards keep every request's sums after its raw row is gone.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from gateway.models import RequestLog
from observability.models import RollupState


def prune_cutoff(now: datetime | None = None) -> datetime | None:
    """Rows created before this may be deleted; None while retention is off or nothing is rolled up."""
    days = settings.GATEWAY_REQUEST_LOG_RETENTION_DAYS
    final_before = RollupState.objects.values_list("final_before", flat=True).first()
    if days <= 0 or final_before is None:
        return None
    return min((now or timezone.now()) - timedelta(days=days), final_before)


def prune_request_log(now: datetime | None = None, batch_size: int | None = None) -> int:
    """Delete expired raw rows in batches (each its own short transaction); the number deleted."""
    cutoff = prune_cutoff(now)
    if cutoff is None:
        return 0
    batch_size = batch_size or settings.GATEWAY_REQUEST_LOG_PRUNE_BATCH
    deleted = 0
    while True:
        # The ids first, through the created_at index; then a DELETE by primary key that locks
        # only those rows, committed before the next batch starts.
        ids = list(
            RequestLog.objects.filter(created_at__lt=cutoff).order_by().values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += RequestLog.objects.filter(id__in=ids).delete()[0]
