"""Nobody can poison the request log: hostile requests leave normalized rows, a batch holding one
lands whole, a row the database refuses anyway is isolated without rewriting the others one by
one, and a prefix is recorded only for a key that authenticated."""

import logging

import pytest
from django.test import override_settings

from gateway.models import RequestLog
from gateway.record import log_writer, request_log
from gateway.record.context import RequestContext
from gateway.record.log_writer import writer
from tests.factories import APIKeyFactory, RequestLogFactory


def _submit(key, *, method="POST", endpoint="/api/v1/predict", status_code=200, client_ip="10.1.2.3", **fields):
    ctx = RequestContext(endpoint=endpoint)
    ctx.set_key(key)
    for name, value in fields.items():
        setattr(ctx, name, value)
    request_log.write(
        ctx, method=method, endpoint=endpoint, status_code=status_code, latency_ms=3.5, client_ip=client_ip
    )
    return ctx.request_id


@pytest.fixture
def writes(settings, monkeypatch):
    """(rows, written) for each COPY the writer makes, on a buffer long enough to gather 1,000 rows."""
    settings.GATEWAY_REQUEST_LOG_BUFFER_S = 0.5
    made = []
    real_copy = log_writer._copy

    def copy(rows):
        try:
            real_copy(rows)
        except Exception:
            made.append((len(rows), False))
            raise
        made.append((len(rows), True))

    monkeypatch.setattr(log_writer, "_copy", copy)
    return made


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_1000_rows_with_one_hostile_row_lands_whole_with_that_row_normalized(writes):
    key = APIKeyFactory()
    good = [_submit(key) for _ in range(999)]
    hostile = _submit(
        key,
        method="XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        client_ip="x",
        model_name="m" * 160,
        key_prefix="gw_way_too_long_prefix",
        endpoint="/api/v1/\x00" + "a" * 500,
        route=["a\x00b", {"not": "a string"}],
        input_tokens=2**40,
        attempts=10**6,
    )

    writer.flush()

    assert all(written for _, written in writes)
    assert RequestLog.objects.filter(api_key=key).count() == 1000
    assert set(RequestLog.objects.filter(request_id__in=good).values_list("request_id", flat=True)) == set(good)
    row = RequestLog.objects.get(request_id=hostile)
    assert row.method == "OTHER"
    assert row.client_ip is None
    assert row.model_name == "m" * 100
    assert len(row.key_prefix) == 8
    assert row.endpoint.startswith("/api/v1/a") and len(row.endpoint) == 200
    assert row.route == ["ab", "{'not': 'a string'}"]
    assert (row.input_tokens, row.attempts) == (2**31 - 1, 32767)


@pytest.mark.django_db(transaction=True)
def test_a_row_the_database_refuses_is_isolated_in_a_few_writes_and_every_good_row_lands_once(writes, caplog):
    key = APIKeyFactory()
    ids = [_submit(key) for _ in range(500)]
    bad = _submit(key, status_code=-1)  # violates the column's CHECK (status_code >= 0)
    ids += [_submit(key) for _ in range(499)]

    with caplog.at_level(logging.ERROR, logger="gateway.record.log_writer"):
        writer.flush()

    assert sorted(RequestLog.objects.filter(api_key=key).values_list("request_id", flat=True)) == sorted(ids)
    assert any(str(bad) in record.getMessage() for record in caplog.records)
    # The good rows went in COPYs of halves, quarters…: about 2·log2(1000) writes, not one per row.
    assert sum(size for size, written in writes if written) == 999
    assert len(writes) <= 2 * 10 + 2


@pytest.mark.usefixtures("default_models")
@override_settings(GATEWAY_TRUST_X_FORWARDED_FOR=True)
def test_hostile_request_fields_leave_a_normalized_row(authed):
    response = authed.post(
        "/api/v1/predict",
        {"text": "I loved it", "model": "x" * 160},
        format="json",
        HTTP_X_FORWARDED_FOR="x",
    )
    odd_method = authed.generic("BREWCOFFEE", "/api/v1/predict")

    row = RequestLog.objects.get(request_id=response["X-Request-ID"])
    assert (row.status_code, row.requested_model, row.model_name, row.client_ip) == (404, "x" * 100, "", None)
    assert RequestLog.objects.get(request_id=odd_method["X-Request-ID"]).method == "OTHER"


@pytest.mark.usefixtures("default_models")
def test_an_unauthenticated_request_is_logged_without_the_prefix_it_typed(client, api_key):
    forged = api_key.plaintext.split(".")[0] + "." + "A" * 43  # a real prefix, a wrong secret

    response = client.post("/api/v1/predict", {"text": "x"}, format="json", HTTP_X_API_KEY=forged)

    row = RequestLog.objects.get(request_id=response["X-Request-ID"])
    assert (row.status_code, row.key_prefix, row.api_key) == (401, "", None)


@pytest.mark.django_db
def test_the_log_admin_filters_only_bounded_columns_and_searches_the_rest(operator):
    RequestLogFactory(model_name="sentiment", endpoint="/api/v1/predict")
    RequestLogFactory(model_name="attacker-chosen-" + "z" * 40, endpoint="/api/v1/zzz")

    page = operator.get("/admin/gateway/requestlog/").content.decode()
    found = operator.get("/admin/gateway/requestlog/", {"q": "sentiment"}).content.decode()

    assert 'data-filter-title="model name"' not in page and 'data-filter-title="endpoint"' not in page
    assert 'data-filter-title="status code"' in page
    assert "attacker-chosen" not in found and "sentiment" in found
