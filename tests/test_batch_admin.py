import pytest

from gateway.models import RequestLog
from inference.batches.models import BatchJob, ItemStatus, JobStatus
from inference.batches.services import LOG_METHOD
from inference.models import ModelVersion
from tests.factories import APIKeyFactory, UserFactory

pytestmark = pytest.mark.usefixtures("default_models")

LIST = "/admin/batches/batchjob/"


@pytest.fixture
def alices_key(db):
    return APIKeyFactory(owner=UserFactory(username="alice"))


def submit(client, key, texts) -> BatchJob:
    response = client.post("/api/v1/batches", {"inputs": texts}, format="json", HTTP_X_API_KEY=key.plaintext)
    assert response.status_code == 202
    return BatchJob.objects.get(pk=response.json()["id"])


def test_job_list_shows_owner_progress_status_and_cost(operator, client, alices_key):
    job = submit(client, alices_key, ["a", "b", "c", "d"])
    BatchJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, succeeded_items=2, failed_items=1, cost_usd="0.0125"
    )

    page = operator.get(LIST).content.decode()

    assert str(job.pk) in page
    assert "alice" in page
    assert f"gw_{alices_key.prefix}…" in page
    assert '<progress value="3" max="4"></progress> 3 / 4' in page
    assert "Running" in page
    assert "0.0125" in page


def test_jobs_come_only_from_the_api(operator):
    assert operator.get(f"{LIST}add/").status_code == 403


def test_cancel_action_stops_active_jobs_and_leaves_finished_ones(operator, client, alices_key):
    active = submit(client, alices_key, ["a"])
    finished = submit(client, alices_key, ["b"])
    BatchJob.objects.filter(pk=finished.pk).update(status=JobStatus.COMPLETED)

    response = operator.post(LIST, {"action": "cancel_jobs", "_selected_action": [active.pk, finished.pk]}, follow=True)

    assert "Cancelled 1 job(s)" in response.content.decode()
    assert BatchJob.objects.get(pk=active.pk).status == JobStatus.CANCELLED
    assert BatchJob.objects.get(pk=finished.pk).status == JobStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_jobs")
def test_retry_failed_action_reruns_only_the_failed_items(operator, client, alices_key):
    job = submit(client, alices_key, ["review: wonderful", "x" * 5000, "review: terrible"])
    job.refresh_from_db()
    assert (job.status, job.succeeded_items, job.failed_items) == (JobStatus.COMPLETED, 2, 1)
    assert "#1: invalid_request" in operator.get(f"{LIST}{job.pk}/change/").content.decode()
    # The operator lets the model take longer texts, then retries the failed item.
    for version in ModelVersion.objects.filter(name="sentiment"):
        version.max_input_chars = 10_000
        version.save()

    response = operator.post(LIST, {"action": "retry_failed_items", "_selected_action": [job.pk]}, follow=True)

    assert "Queued 1 failed item(s) again" in response.content.decode()
    job.refresh_from_db()
    assert (job.status, job.succeeded_items, job.failed_items) == (JobStatus.COMPLETED, 3, 0)
    assert set(job.items.values_list("status", flat=True)) == {ItemStatus.SUCCEEDED}
    # Each attempt keeps its own log row: the first two items once, the retried one twice.
    rows = RequestLog.objects.filter(method=LOG_METHOD).order_by("created_at")
    assert sorted(row.status_code for row in rows) == [200, 200, 200, 400]
    assert rows.values("request_id").distinct().count() == 4
