"""The request log writer (gateway/record/log_writer.py): rows handed over are written in batches, none lost."""

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.models import RequestLog
from gateway.record import request_log
from gateway.record.context import RequestContext
from gateway.record.log_writer import writer
from tests.factories import APIKeyFactory

# The writer's thread has its own connection: it sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _buffered(settings):
    settings.GATEWAY_REQUEST_LOG_BUFFER_S = 0.05


def _submit(key, status_code=200) -> uuid.UUID:
    ctx = RequestContext(endpoint="/api/v1/predict")
    ctx.set_key(key)
    ctx.route = ["sentiment:v1: ok"]
    request_log.write(ctx, method="POST", endpoint=ctx.endpoint, status_code=status_code, latency_ms=12.5)
    return ctx.request_id


def test_rows_from_many_threads_are_all_written_with_their_fields():
    key = APIKeyFactory()

    with ThreadPoolExecutor(16) as threads:
        request_ids = set(threads.map(lambda _: _submit(key), range(200)))
    writer.flush()

    rows = RequestLog.objects.filter(api_key=key)
    assert set(rows.values_list("request_id", flat=True)) == request_ids
    row = rows.first()
    assert (row.status_code, row.latency_ms, row.route, row.key_prefix) == (200, 12.5, ["sentiment:v1: ok"], key.prefix)


def test_a_row_the_database_refuses_loses_only_itself(caplog):
    key = APIKeyFactory()

    good = [_submit(key) for _ in range(3)]
    bad = _submit(key, status_code=-1)  # violates the column's CHECK (status_code >= 0)
    good.append(_submit(key))
    with caplog.at_level(logging.ERROR, logger="gateway.record.log_writer"):
        writer.flush()

    assert set(RequestLog.objects.filter(api_key=key).values_list("request_id", flat=True)) == set(good)
    assert any(str(bad) in record.getMessage() for record in caplog.records)
