"""Batch jobs on real Celery worker processes and the real Redis broker."""

import os
import signal
import time
from decimal import Decimal

import pytest
from django.core.cache import cache

from config.celery import app as celery_app
from gateway.models import RequestLog
from inference.batches.models import BatchItem, BatchJob, ItemStatus, JobStatus
from inference.batches.services import LOG_METHOD
from inference.batches.tasks import process_batch_chunk
from tests.factories import sentiment_priced_per_request

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_models")]

PRICE_PER_ITEM = Decimal("0.001")
# Generous: only a hung worker should reach it; nothing asserts how long anything took.
WAIT_S = 600


def reviews(count: int) -> list[str]:
    """Short texts whose expected label follows from their index (even: POSITIVE)."""
    return [f"review {i}: {'wonderful' if i % 2 == 0 else 'terrible'}" for i in range(count)]


def expected_label(index: int) -> str:
    return "POSITIVE" if index % 2 == 0 else "NEGATIVE"


@pytest.fixture(autouse=True)
def priced_sentiment(default_models):
    return sentiment_priced_per_request(PRICE_PER_ITEM)


@pytest.fixture(autouse=True)
def _polling_unlimited(settings):
    """The tests poll their jobs as fast as they can: more than the default requests per minute."""
    settings.GATEWAY_DEFAULT_LIMITS = {"requests_per_minute": 0, "tokens_per_minute": 0, "max_in_flight": 0}


def submit(client, texts) -> str:
    response = client.post("/api/v1/batches", {"inputs": texts}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def wait_for(condition, what: str, workers=()):
    deadline = time.monotonic() + WAIT_S
    while not (value := condition()):
        if time.monotonic() > deadline:
            logs = "\n".join(worker.log_tail() for worker in workers)
            raise AssertionError(f"gave up waiting for {what}; worker logs:\n{logs}")
        time.sleep(0.05)
    return value


def job_of(job_id) -> BatchJob:
    return BatchJob.objects.get(pk=job_id)


def all_results(client, job_id) -> list[dict]:
    results, url = [], f"/api/v1/batches/{job_id}/results?limit=100"
    while url:
        page = client.get(url).json()
        results += page["results"]
        url = page["next"]
    return results


def active_tasks(worker) -> list[dict]:
    return celery_app.control.inspect([worker.hostname], timeout=5, limit=1).active()[worker.hostname]


def item_log_rows(job_id):
    return RequestLog.objects.filter(endpoint=f"/api/v1/batches/{job_id}", method=LOG_METHOD)


def test_500_item_job_completes_in_index_order_while_progress_moves(start_worker, authed):
    worker = start_worker()
    job_id = submit(authed, reviews(500))

    seen = []

    def finished():
        job = authed.get(f"/api/v1/batches/{job_id}").json()
        seen.append(job["progress"]["done"])
        return job["status"] == "completed" and job

    job = wait_for(finished, "the job to complete", [worker])

    assert seen == sorted(seen)
    assert any(0 < done < 500 for done in seen), seen
    assert job["progress"] == {"done": 500, "total": 500, "succeeded": 500, "failed": 0}
    results = all_results(authed, job_id)
    assert [result["index"] for result in results] == list(range(500))
    assert [result["result"]["label"] for result in results] == [expected_label(i) for i in range(500)]
    assert Decimal(job["cost_usd"]) == 500 * PRICE_PER_ITEM
    rows = item_log_rows(job_id)
    assert rows.count() == 500
    assert {row.status_code for row in rows} == {200}
    assert sum(row.cost_usd for row in rows) == 500 * PRICE_PER_ITEM


def test_cancel_stops_the_remaining_chunks(start_worker, authed):
    worker = start_worker()
    job_id = submit(authed, reviews(500))
    wait_for(lambda: job_of(job_id).processed_items > 0, "the job to start", [worker])

    response = authed.post(f"/api/v1/batches/{job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    done_at_cancel = response.json()["progress"]["done"]
    # A job queued after the cancel runs once the worker has taken every chunk of the first
    # (the queue is FIFO); once the worker is idle too, every one of those chunks has ended.
    sentinel = submit(authed, ["review: wonderful"])
    wait_for(lambda: job_of(sentinel).status == JobStatus.COMPLETED, "the job queued after", [worker])
    wait_for(lambda: active_tasks(worker) == [], "the worker to be idle", [worker])
    job = job_of(job_id)
    assert job.status == JobStatus.CANCELLED
    # Chunks already running when the cancel came (at most one per worker thread) finish;
    # no other chunk runs.
    assert done_at_cancel <= job.processed_items <= done_at_cancel + 2 * job.chunk_size
    assert job.processed_items < 500
    assert BatchItem.objects.filter(job=job).exclude(status=ItemStatus.PENDING).count() == job.processed_items
    assert item_log_rows(job_id).count() == job.processed_items
    statuses = {result["status"] for result in all_results(authed, job_id)}
    assert statuses == {"succeeded", "skipped"}


def test_worker_killed_mid_job_is_replaced_and_every_item_is_done_exactly_once(start_worker, authed):
    first = start_worker()
    job_id = submit(authed, reviews(500))
    wait_for(lambda: job_of(job_id).processed_items > 0, "the job to start", [first])

    first.kill()  # SIGKILL to all its processes: no warm shutdown, running chunks unacknowledged

    assert job_of(job_id).processed_items < 500
    second = start_worker()
    wait_for(lambda: job_of(job_id).status == JobStatus.COMPLETED, "the job to complete", [second])
    job = job_of(job_id)
    assert (job.total_items, job.succeeded_items, job.failed_items) == (500, 500, 0)
    items = list(BatchItem.objects.filter(job=job).order_by("index"))
    assert [item.index for item in items] == list(range(500))
    assert [item.result["label"] for item in items] == [expected_label(i) for i in range(500)]
    # Each item logged (and charged) once: one row per item, carrying that item's request id.
    rows = item_log_rows(job_id)
    assert rows.count() == 500
    assert set(rows.values_list("request_id", flat=True)) == {item.request_id for item in items}
    # An item the killed worker had answered, but not stored, comes back from the response
    # cache when redone: charged nothing, its price counted as saved.
    assert job.cost_usd == sum(row.cost_usd for row in rows)
    assert sum(row.cost_usd + row.cost_saved_usd for row in rows) == 500 * PRICE_PER_ITEM


def test_pool_process_killed_mid_chunk_is_replaced_and_the_chunk_redone_once(start_worker, authed):
    worker = start_worker()
    job_id = submit(authed, reviews(500))
    wait_for(lambda: job_of(job_id).processed_items > 0, "the job to start", [worker])

    running = wait_for(
        lambda: [task for task in active_tasks(worker) if task["name"] == process_batch_chunk.name],
        "a chunk to be running",
        [worker],
    )
    os.kill(running[0]["worker_pid"], signal.SIGKILL)  # the pool process running that chunk

    wait_for(lambda: job_of(job_id).status == JobStatus.COMPLETED, "the job to complete", [worker])
    job = job_of(job_id)
    assert (job.succeeded_items, job.failed_items) == (500, 0)
    assert item_log_rows(job_id).count() == 500
    # The kill was seen: as a lost task when it landed mid-chunk (the usual case), or as a dead
    # pool process when that chunk had just finished.
    log = worker.log_tail(200_000)
    assert "WorkerLostError" in log or "signal 9" in log


def test_a_bad_item_fails_alone(start_worker, authed):
    worker = start_worker()
    texts = ["review: wonderful", "x" * 5000, "   ", "review: terrible"]

    job_id = submit(authed, texts)

    wait_for(lambda: job_of(job_id).status == JobStatus.COMPLETED, "the job to complete", [worker])
    job = authed.get(f"/api/v1/batches/{job_id}").json()
    assert job["progress"] == {"done": 4, "total": 4, "succeeded": 2, "failed": 2}
    results = all_results(authed, job_id)
    assert [result["status"] for result in results] == ["succeeded", "failed", "failed", "succeeded"]
    assert results[0]["result"]["label"] == "POSITIVE"
    assert results[3]["result"]["label"] == "NEGATIVE"
    assert results[1]["error"]["type"] == "invalid_request"
    assert "4000 characters" in results[1]["error"]["message"]
    assert "blank" in results[2]["error"]["message"]
    rows = {row.request_id: row for row in item_log_rows(job_id)}
    assert sorted(row.status_code for row in rows.values()) == [200, 200, 400, 400]
    # Refused inputs never reach the model and cost nothing.
    assert Decimal(job["cost_usd"]) == 2 * PRICE_PER_ITEM == sum(row.cost_usd for row in rows.values())


def test_a_job_whose_queued_chunks_were_lost_is_queued_again_and_completes(start_worker, authed):
    job_id = submit(authed, reviews(100))
    # The cache shares the tests' Redis database with the broker: this empties the queue,
    # as a Redis restart without persistence would.
    cache.clear()

    worker = start_worker()

    wait_for(lambda: job_of(job_id).status == JobStatus.COMPLETED, "the stalled job to complete", [worker])
    job = job_of(job_id)
    assert (job.succeeded_items, job.failed_items) == (100, 0)
    assert item_log_rows(job_id).count() == 100
    assert "queueing 100 items again" in worker.log_tail(20_000)
