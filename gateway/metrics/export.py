"""GET /metrics: the Prometheus exposition of every worker process of this server.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn.conf.py) each worker writes its
samples to files there; a scrape, answered by any one worker, sums them all. Without that
directory (tests, a single process) the process's own registry is exposed.

Some values are read when scraped rather than counted as they happen: the queue backlogs
in the Celery broker, the age of the dashboards' rollups, and budget use per budgeted key and
team. Add more to SCRAPE_TIME_READERS.
"""

import hmac
import logging
import os

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
    (Redis; rebuilt from the log when missing): one gauge per budgeted owner, no more."""
    from gateway.limits import budgets
    from gateway.models import APIKey, Team

    owners: list[tuple[str, str, APIKey | Team]] = [
        *(("key", key.prefix, key) for key in APIKey.objects.filter(budget_usd__gt=0, revoked_at__isnull=True)),
        *(("team", team.name, team) for team in Team.objects.filter(budget_usd__gt=0)),
    ]
    for scope, name, owner in owners:
        used = budgets.spent_this_period(owner) / owner.budget_usd  # type: ignore[operator]  # filtered on budget_usd > 0
        families.BUDGET_USED_RATIO.labels(scope, name).set(float(used))


SCRAPE_TIME_READERS = [_read_queue_depths, _read_rollup_lag, _read_budget_use]


@require_GET
def metrics_view(request):
    token = settings.GATEWAY_METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("A bearer token is required for /metrics.\n", status=401, content_type="text/plain")
    for read in SCRAPE_TIME_READERS:
        try:
            read()
        except Exception:  # a broker or database outage must not take the other metrics down
            logger.exception("Could not read %s for /metrics", read.__name__)
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry():
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
