from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from gateway.models import RequestLog
from observability import rollups
from observability.models import DailyRollup
from observability.retention import prune_request_log
from tests.factories import RequestLogFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)


def _rows_days_ago(*days: float) -> list[RequestLog]:
    return [RequestLogFactory(created_at=NOW - timedelta(days=age)) for age in days]


@override_settings(GATEWAY_REQUEST_LOG_RETENTION_DAYS=30)
def test_rows_past_retention_are_deleted_in_batches_and_their_sums_kept():
    old = _rows_days_ago(40, 35, 33, 31, 30.5)
    recent = _rows_days_ago(29, 2, 0.01)
    rollups.refresh(now=NOW)

    deleted = prune_request_log(now=NOW, batch_size=2)

    assert deleted == len(old)
    assert set(RequestLog.objects.values_list("id", flat=True)) == {row.id for row in recent}
    assert DailyRollup.objects.aggregate(total=Sum("requests"))["total"] == len(old) + len(recent)


@override_settings(GATEWAY_REQUEST_LOG_RETENTION_DAYS=30)
def test_rows_not_rolled_up_yet_are_kept_whatever_their_age():
    _rows_days_ago(40, 35)

    assert prune_request_log(now=NOW) == 0  # no rollup has run
    assert RequestLog.objects.count() == 2


@override_settings(GATEWAY_REQUEST_LOG_RETENTION_DAYS=0)
def test_retention_zero_keeps_every_row():
    _rows_days_ago(45)
    rollups.refresh(now=NOW)

    assert prune_request_log(now=NOW) == 0
    assert RequestLog.objects.count() == 1


@override_settings(GATEWAY_REQUEST_LOG_RETENTION_DAYS=1)
def test_prunerequestlog_command_prunes(capsys):
    for age in (3, 2):
        RequestLogFactory(created_at=timezone.now() - timedelta(days=age))
    rollups.refresh()

    call_command("prunerequestlog")

    assert "Deleted 2 request-log row(s)." in capsys.readouterr().out
    assert not RequestLog.objects.exists()
