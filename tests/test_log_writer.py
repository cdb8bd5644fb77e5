"""The request log writer (gateway/record/log_writer.py): rows handed over are written in batches, none lost."""

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.models import RequestLog
from gateway.record import request_log, spool
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


def test_a_dead_processs_spool_segment_is_adopted_and_every_row_written_once(settings, tmp_path):
    """A segment left without its lock (its process was killed): rows whose COPY had landed are
    not written again, the others are, and a line cut mid-write (its answer never left) is not."""
    settings.GATEWAY_REQUEST_SPOOL_DIR = str(tmp_path)
    key = APIKeyFactory()
    rows = []
    for _ in range(5):
        ctx = RequestContext(endpoint="/api/v1/predict")
        ctx.set_key(key)
        rows.append(request_log.log_row(ctx, method="POST", endpoint=ctx.endpoint, status_code=200, latency_ms=1.0))
    RequestLog.objects.bulk_create(rows[:2])  # written before the process died
    directory = spool.directory_path()
    directory.mkdir(parents=True)
    cut = spool.encode(rows[4])[:-20]
    (directory / f"{time.time_ns():020d}-999999.spool").write_bytes(b"".join(map(spool.encode, rows[:4])) + cut)

    writer.spool._scanned_at = 0.0  # look for orphans on the writer's next round
    live = _submit(key)  # this process's own traffic goes on meanwhile
    writer.flush()  # adopts the segment
    writer.flush()  # replays it

    logged = list(RequestLog.objects.filter(api_key=key).values_list("request_id", flat=True))
    assert sorted(logged) == sorted([live, *(row.request_id for row in rows[:4])])
    # The orphan is gone once replayed; what is left is this process's own current segment.
    assert [path.name for path in directory.iterdir() if "-999999" in path.name] == []
