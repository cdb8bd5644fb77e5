"""GET /metrics: the Prometheus exposition of every worker process of this server.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn.conf.py) each worker writes its
samples to files there; a scrape, answered by any one worker, sums them all. Without that
directory (tests, a single process) the process's own registry is exposed.

Some values are read when scraped rather than counted as they happen: the queue backlogs
in the Celery broker, the age of the dashboards' rollups, and budget use per budgeted key and
team. Each reader runs at most once per GATEWAY_METRICS_READ_EVERY_S in a process (scrapes in
between expose what it last read), with a bounded number of queries. Add more to
SCRAPE_TIME_READERS.

/metrics needs `Authorization: Bearer <GATEWAY_METRICS_TOKEN>`; with no token configured it is
open on the embedded default only, and answers 401 elsewhere.
"""

import hmac
import logging
import os
import threading
import time

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from gateway.metrics import families

logger = logging.getLogger(__name__)


def _read_queue_depths() -> None:
    from config.celery import app

    if app.conf.task_always_eager or app.conf.broker_url.startswith("memory://"):
        return
    # A broker that is down must not hold the scrape for long.
    with app.connection_for_read(connect_timeout=1) as connection:
        channel = connection.default_channel
        for queue in settings.GATEWAY_METRICS_CELERY_QUEUES:
            try:
                _, depth, _ = channel.queue_declare(queue=queue, passive=True)
            except Exception:  # a queue nobody declared yet holds nothing
                depth = 0
            families.BATCH_QUEUE_DEPTH.labels(queue).set(depth)


def _read_rollup_lag() -> None:
    from observability.rollups import last_refreshed_at

    refreshed_at = last_refreshed_at()
    if refreshed_at is not None:
        families.ROLLUP_LAG.set((timezone.now() - refreshed_at).total_seconds())


def _read_budget_use() -> None:
    """Spend over budget for every key and team with a budget, from the live budget counters
    (Redis; rebuilt from the log when missing): one gauge per budgeted owner, labelled by id
    (a key's name and a team's name are free text), read together (budgets.spent_this_period_of)."""
    from gateway.limits import budgets
    from gateway.models import APIKey, Team

    owners: list[APIKey | Team] = [
        *APIKey.objects.filter(budget_usd__gt=0, revoked_at__isnull=True),
        *Team.objects.filter(budget_usd__gt=0),
    ]
    for owner, spent in zip(owners, budgets.spent_this_period_of(owners), strict=True):
        scope = "team" if isinstance(owner, Team) else "key"
        used = spent / owner.budget_usd  # type: ignore[operator]  # filtered on budget_usd > 0
        families.BUDGET_USED_RATIO.labels(scope, str(owner.pk)).set(float(used))


SCRAPE_TIME_READERS = [_read_queue_depths, _read_rollup_lag, _read_budget_use]
_last_read: dict[str, float] = {}
_read_lock = threading.Lock()


def _read_scrape_time_values() -> None:
    """Run each reader that has not run in this process for GATEWAY_METRICS_READ_EVERY_S; one
    scrape at a time reads, the others expose what was last read."""
    if not _read_lock.acquire(blocking=False):
        return
    try:
        for read in SCRAPE_TIME_READERS:
            now = time.monotonic()
            if now - _last_read.get(read.__name__, -float("inf")) < settings.GATEWAY_METRICS_READ_EVERY_S:
                continue
            _last_read[read.__name__] = now
            try:
                read()
            except Exception:  # a broker or database outage must not take the other metrics down
                logger.exception("Could not read %s for /metrics", read.__name__)
    finally:
        _read_lock.release()


def _authorized(request) -> bool:
    token = settings.GATEWAY_METRICS_TOKEN
    if not token:
        return settings.GATEWAY_EMBEDDED
    # Bytes: compare_digest refuses str with non-ASCII characters, which a client may send.
    sent = request.headers.get("Authorization", "").encode()
    return hmac.compare_digest(sent, f"Bearer {token}".encode())


@require_GET
def metrics_view(request):
    if not _authorized(request):
        return HttpResponse(
            "A bearer token is required for /metrics (GATEWAY_METRICS_TOKEN).\n", status=401, content_type="text/plain"
        )
    _read_scrape_time_values()
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry():
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
