"""Faults under load lose no log row (tests/chaos.py; the full suite is `make chaos`)."""

import pytest
from django.conf import settings
from django.db import connection

from gateway.models import RequestLog
from tests.chaos import CHAT_MODEL, Chaos
from tests.servers import http, served_database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _harness(tmp_path, **env) -> Chaos:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the chaos harness needs PostgreSQL and Redis: run it with make test")
    # One web worker: a SIGKILL leaves the successor gunicorn starts to adopt its spool, and
    # every request finds the key in the one snapshot (make chaos runs two).
    return Chaos(served_database_url(), tmp_path, connections=8, env={"WEB_WORKERS": "1", **env})


@pytest.fixture
def chaos(tmp_path):
    with _harness(tmp_path).running() as harness:
        yield harness


def _assert_nothing_lost(outcome, *, cut_connections=0):
    assert outcome.requests > 0
    assert (outcome.rows_lost, outcome.rows_duplicated) == (0, 0), outcome
    # A row without an answer only for a request whose connection a kill cut after its row was
    # spooled and before its answer was sent (docs/decisions/0070-durable-request-record.md).
    assert outcome.rows_unanswered <= cut_connections, outcome
    assert 500 not in outcome.errors, outcome
    assert outcome.refused_without_retry_after == 0, outcome


def test_a_postgresql_outage_under_load_loses_no_row(chaos):
    outcome = chaos.postgres_outage(5)

    _assert_nothing_lost(outcome)
    # Keys and configuration came from the snapshot: requests kept being answered meanwhile.
    assert outcome.errors.get(503, 0) < outcome.requests


def test_a_sigkilled_web_workers_answered_requests_are_all_logged_after_its_successor_starts(chaos):
    outcome = chaos.web_worker_killed()

    _assert_nothing_lost(outcome, cut_connections=outcome.socket_errors)


def test_a_full_spool_refuses_billable_requests_with_503_and_retry_after(tmp_path):
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hello"}]}
    # Room for a few rows only: the spool fills within the outage.
    with _harness(tmp_path, GATEWAY_REQUEST_SPOOL_MAX_BYTES="8000").running() as chaos:
        _, plaintext = chaos.probe_key
        url, headers = chaos.node.url + "/v1/chat/completions", {"X-API-Key": plaintext}
        chaos.proxy.refuse()
        answered, refusals = [], []
        for _ in range(300):
            status, answer_headers, answer = http("POST", url, body, headers)
            if status == 200:
                answered.append(answer_headers["X-Request-ID"])
                continue
            refusals.append((status, answer["error"]["type"], answer_headers.get("Retry-After")))
            if answer["error"]["type"] == "record_unavailable":
                break
        ready_status, _, ready = http("GET", chaos.node.url + "/ready")
        chaos.proxy.restore()
        chaos.wait_recovered()

    assert refusals[-1][:2] == (503, "record_unavailable"), refusals
    assert {status for status, _, _ in refusals} == {503}, refusals
    assert all(int(retry_after) > 0 for _, _, retry_after in refusals), refusals
    assert (ready_status, ready["checks"]["request_log"]["spool_full"]) == (503, True)
    # Every answer it gave before refusing was written once the database came back.
    assert answered, refusals
    assert RequestLog.objects.filter(request_id__in=answered).count() == len(answered)
