import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from config.celery import app
from gateway.models import RequestLog
from observability.models import HourlyRollup
from observability.tasks import prune_request_log, refresh_rollups
from tests.factories import RequestLogFactory


def test_the_scheduler_runs_both_tasks_on_the_maintenance_queue():
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert schedule[refresh_rollups.name] == 60.0
    assert schedule[prune_request_log.name] == 3600.0
    for task in (refresh_rollups, prune_request_log):
        assert app.amqp.router.route({}, task.name)["queue"].name == "maintenance"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@override_settings(GATEWAY_REQUEST_LOG_RETENTION_DAYS=1)
def test_a_maintenance_worker_refreshes_rollups_and_prunes_the_log():
    RequestLogFactory(created_at=timezone.now() - timezone.timedelta(days=3))
    RequestLogFactory()

    with start_worker(app, queues=["maintenance"], pool="solo", perform_ping_check=False, shutdown_timeout=30):
        refresh_rollups.delay()
        _wait_for(lambda: HourlyRollup.objects.aggregate(n=Sum("requests"))["n"] == 2)
        prune_request_log.delay()
        _wait_for(lambda: RequestLog.objects.count() == 1)

    assert HourlyRollup.objects.aggregate(n=Sum("requests"))["n"] == 2  # the pruned row is still counted


def _wait_for(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the worker did not finish the task in time"
        time.sleep(0.1)
