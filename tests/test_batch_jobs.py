"""Batch jobs through the API and the services, in the test process.

Tests marked `eager_jobs` run jobs as the embedded default does (inside the submitting
request); they use transactional tests because item threads read the database on their own
connections. The rest never run a chunk through Celery: in a test transaction the chunks'
`on_commit` queueing never fires. Real worker processes are in test_batch_workers.py.
"""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from gateway.models import RequestLog
from inference.batches import services
from inference.batches.models import BatchItem, BatchJob, ItemStatus, JobStatus
from inference.models import ModelVersion
from tests.factories import APIKeyFactory, TeamFactory, UserFactory
from tests.servers import free_port, gunicorn, http, served_database_url

pytestmark = pytest.mark.usefixtures("default_models")

REVIEWS = ["review 0: wonderful", "review 1: terrible", "review 2: wonderful"]


def submit(client, body, **extra):
    return client.post("/api/v1/batches", body, format="json", **extra)


def error_of(response) -> dict:
    return response.json()["error"]


# Submitting


def test_submission_answers_202_with_the_queued_job_at_once(authed):
    response = submit(authed, {"inputs": REVIEWS})

    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert job["progress"] == {"done": 0, "total": 3, "succeeded": 0, "failed": 0}
    assert job["model"] == "sentiment"
    assert job["model_version"] == "sst2-head-minilm-v1"
    assert job["task"] == "text-classification"
    assert response["Location"] == f"/api/v1/batches/{job['id']}"
    assert list(BatchItem.objects.filter(job_id=job["id"]).values_list("text", flat=True)) == REVIEWS


def test_submission_pins_the_version_in_production_at_the_time(authed):
    job_id = submit(authed, {"inputs": REVIEWS}).json()["id"]
    ModelVersion.objects.create(
        name="sentiment", version="newer", task="text-classification", backend="zero-shot", source="x"
    ).promote()

    assert BatchJob.objects.get(pk=job_id).model_ref == "sentiment:sst2-head-minilm-v1"
    assert authed.get(f"/api/v1/batches/{job_id}").json()["model_version"] == "sst2-head-minilm-v1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": "one text"}, "inputs"),
        ({"inputs": ["fine", 3]}, "inputs"),
        ({"inputs": ["fine", None]}, "inputs"),
        ({"inputs": ["fine"], "task": "chat"}, "task"),
        ({"inputs": ["fine"], "model": 7}, "model"),
    ],
    ids=["nothing", "empty", "not-a-list", "number", "null", "unknown-task", "model-not-a-string"],
)
def test_invalid_submissions_are_refused_with_field_errors(authed, body, field):
    response = submit(authed, body)

    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request"
    assert field in error_of(response)["fields"]
    assert not BatchJob.objects.exists()


def test_the_failing_input_is_named_by_its_index(authed):
    response = submit(authed, {"inputs": ["fine", "fine", 3]})

    assert error_of(response)["fields"]["inputs"] == {"2": ["Not a valid string."]}


def test_jobs_over_the_item_limit_are_refused(authed, settings):
    settings.GATEWAY_BATCH_MAX_ITEMS = 3

    response = submit(authed, {"inputs": ["a", "b", "c", "d"]})

    assert response.status_code == 400
    assert "At most 3 inputs" in error_of(response)["fields"]["inputs"][0]


def test_unknown_model_is_refused_at_submission(authed):
    response = submit(authed, {"inputs": REVIEWS, "model": "nope"})

    assert response.status_code == 404
    assert error_of(response)["type"] == "model_not_found"


def test_key_without_the_batches_scope_gets_403(client):
    key = APIKeyFactory(allowed_endpoints=["predict"])

    response = submit(client, {"inputs": REVIEWS}, HTTP_X_API_KEY=key.plaintext)

    assert response.status_code == 403
    assert error_of(response)["type"] == "permission_denied"


def test_key_limited_to_other_models_gets_403(client):
    key = APIKeyFactory(allowed_models=["embeddings"])

    response = submit(client, {"inputs": REVIEWS}, HTTP_X_API_KEY=key.plaintext)

    assert response.status_code == 403
    assert "sentiment" in error_of(response)["message"]


def test_submission_needs_a_key(client):
    assert submit(client, {"inputs": REVIEWS}).status_code == 401


def test_batch_bodies_may_be_larger_than_other_requests(authed):
    texts = ["x" * 3900] * 300  # about 1.2 MB of JSON, over the 1 MiB limit of other endpoints

    assert authed.post("/api/v1/predict", {"text": texts[0], "pad": texts}, format="json").status_code == 413
    assert submit(authed, {"inputs": texts}).status_code == 202


def test_batch_bodies_over_their_own_limit_get_413(authed, settings):
    settings.GATEWAY_BATCH_MAX_BODY_BYTES = 1000

    response = submit(authed, {"inputs": ["x" * 1000]})

    assert response.status_code == 413
    assert error_of(response)["type"] == "payload_too_large"


def test_jsonl_upload_makes_one_item_per_line(authed):
    lines = b'"first"\n{"text": "second", "id": "kept-by-the-client"}\n\n"third"\n'
    upload = SimpleUploadedFile("inputs.jsonl", lines, content_type="application/x-ndjson")

    response = authed.post("/api/v1/batches", {"file": upload, "task": "embeddings"}, format="multipart")

    assert response.status_code == 202
    job = BatchJob.objects.get(pk=response.json()["id"])
    assert job.task == "embeddings"
    assert job.model_name == "embeddings"
    assert list(job.items.order_by("index").values_list("text", flat=True)) == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'"fine"\n{not json\n', "Line 2 is not valid JSON."),
        (b'"fine"\n"fine"\n42\n', 'Line 3: give a JSON string or an object with a "text" string.'),
        (b'{"input": "wrong key"}\n', 'Line 1: give a JSON string or an object with a "text" string.'),
        (b'"caf\xe9"\n', "Line 1 is not UTF-8."),
        (b"\n\n", "The job has no inputs."),
    ],
    ids=["invalid-json", "number", "no-text-field", "not-utf8", "empty"],
)
def test_bad_jsonl_is_refused_naming_the_line(authed, content, message):
    upload = SimpleUploadedFile("inputs.jsonl", content)

    response = authed.post("/api/v1/batches", {"file": upload}, format="multipart")

    assert response.status_code == 400
    assert error_of(response)["fields"]["file"] == [message]


# Who sees a job


def test_another_owners_key_gets_404_for_the_job(authed, client):
    job_id = submit(authed, {"inputs": REVIEWS}).json()["id"]
    stranger = APIKeyFactory(owner=UserFactory())
    client.credentials(HTTP_X_API_KEY=stranger.plaintext)

    for method, path in [
        ("get", f"/api/v1/batches/{job_id}"),
        ("get", f"/api/v1/batches/{job_id}/results"),
        ("get", f"/api/v1/batches/{job_id}/results.jsonl"),
        ("post", f"/api/v1/batches/{job_id}/cancel"),
        ("get", f"/batch_result/{job_id}"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 404, path
        assert error_of(response)["type"] == "not_found"
    assert BatchJob.objects.get(pk=job_id).status == JobStatus.QUEUED


def test_another_teams_key_gets_404_and_a_team_mate_sees_the_job(client):
    ours, theirs = TeamFactory(), TeamFactory()
    mine, mate, stranger = APIKeyFactory(team=ours), APIKeyFactory(team=ours), APIKeyFactory(team=theirs)
    job_id = submit(client, {"inputs": REVIEWS}, HTTP_X_API_KEY=mine.plaintext).json()["id"]

    assert client.get(f"/api/v1/batches/{job_id}", HTTP_X_API_KEY=mate.plaintext).status_code == 200
    assert client.get(f"/api/v1/batches/{job_id}", HTTP_X_API_KEY=stranger.plaintext).status_code == 404


def test_a_key_without_a_team_sees_only_its_own_jobs_not_its_owners_other_keys(client):
    owner = UserFactory()
    first, second = APIKeyFactory(owner=owner), APIKeyFactory(owner=owner)
    job_id = submit(client, {"inputs": REVIEWS}, HTTP_X_API_KEY=first.plaintext).json()["id"]

    assert client.get(f"/api/v1/batches/{job_id}", HTTP_X_API_KEY=first.plaintext).status_code == 200
    assert client.get(f"/api/v1/batches/{job_id}", HTTP_X_API_KEY=second.plaintext).status_code == 404
    assert client.post(f"/api/v1/batches/{job_id}/cancel", HTTP_X_API_KEY=second.plaintext).status_code == 404


def test_unknown_and_malformed_job_ids_are_404s(authed):
    assert authed.get("/api/v1/batches/00000000-0000-0000-0000-000000000000").status_code == 404
    response = authed.get("/api/v1/batches/not-a-uuid")
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found"


# Cancelling


def test_a_cancelled_job_runs_no_further_chunk(authed):
    job_id = submit(authed, {"inputs": REVIEWS}).json()["id"]

    response = authed.post(f"/api/v1/batches/{job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    services.batch_chunk_process(job_id=job_id, start=0, stop=3)
    assert not BatchItem.objects.filter(job_id=job_id).exclude(status=ItemStatus.PENDING).exists()
    results = authed.get(f"/api/v1/batches/{job_id}/results").json()["results"]
    assert {result["status"] for result in results} == {"skipped"}


def test_cancelling_a_finished_job_is_a_409(authed):
    job_id = submit(authed, {"inputs": REVIEWS}).json()["id"]
    authed.post(f"/api/v1/batches/{job_id}/cancel")

    response = authed.post(f"/api/v1/batches/{job_id}/cancel")

    assert response.status_code == 409
    assert error_of(response)["type"] == "job_finished"


# Running (eagerly, as the embedded default does)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_jobs")
def test_embedded_default_runs_jobs_through_the_seed_paths(authed):
    response = authed.post("/batch_predict", REVIEWS, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"task_id"}
    result = authed.get(f"/batch_result/{response.json()['task_id']}").json()
    assert result["status"] == "completed"
    assert [item["label"] for item in result["results"]] == ["POSITIVE", "NEGATIVE", "POSITIVE"]
    assert all(0.5 < item["confidence"] <= 1 for item in result["results"])


def test_seed_batch_result_is_pending_until_the_job_finishes(authed):
    task_id = authed.post("/batch_predict", REVIEWS, format="json").json()["task_id"]

    assert authed.get(f"/batch_result/{task_id}").json() == {"status": "pending"}


def test_seed_batch_predict_takes_a_json_list(authed):
    response = authed.post("/batch_predict", {"texts": REVIEWS}, format="json")

    assert response.status_code == 400
    assert error_of(response)["fields"] == {"non_field_errors": ["Send a JSON list of texts."]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_jobs")
def test_results_page_in_index_order_and_download_as_jsonl(authed, settings):
    settings.GATEWAY_BATCH_CHUNK_SIZE = 2
    texts = [f"review {i}: {'wonderful' if i % 2 == 0 else 'terrible'}" for i in range(7)]
    job_id = submit(authed, {"inputs": texts}).json()["id"]

    first = authed.get(f"/api/v1/batches/{job_id}/results?limit=3").json()
    last = authed.get(f"/api/v1/batches/{job_id}/results?limit=3&offset=6").json()
    download = authed.get(f"/api/v1/batches/{job_id}/results.jsonl")

    assert first["count"] == 7
    assert [result["index"] for result in first["results"]] == [0, 1, 2]
    assert "offset=3" in first["next"]
    assert [result["index"] for result in last["results"]] == [6]
    assert last["next"] is None
    assert download["Content-Type"] == "application/x-ndjson"
    assert "attachment" in download["Content-Disposition"]
    lines = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert [line["index"] for line in lines] == list(range(7))
    assert [line["result"]["label"] for line in lines] == ["POSITIVE", "NEGATIVE"] * 3 + ["POSITIVE"]
    assert lines == first["results"] + authed.get(f"/api/v1/batches/{job_id}/results?offset=3").json()["results"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_jobs")
def test_items_run_together_whatever_the_keys_cap_on_calls_in_flight(client, settings):
    # A chunk's items run at once on the worker's threads; the cap guards web server threads.
    settings.GATEWAY_BATCH_CHUNK_SIZE = 4
    key = APIKeyFactory(max_in_flight=1)
    client.credentials(HTTP_X_API_KEY=key.plaintext)
    job_id = submit(client, {"inputs": ["great", "awful", "fine", "dull"]}).json()["id"]

    results = client.get(f"/api/v1/batches/{job_id}/results").json()["results"]

    assert [result["status"] for result in results] == ["succeeded"] * 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_jobs")
def test_embeddings_job_gives_one_unit_vector_per_input(authed):
    job_id = submit(authed, {"inputs": ["first text", "second text"], "task": "embeddings"}).json()["id"]

    results = authed.get(f"/api/v1/batches/{job_id}/results").json()["results"]

    assert [result["status"] for result in results] == ["succeeded", "succeeded"]
    vector = results[0]["result"]["embedding"]
    assert len(vector) == 384
    assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_jobs")
def test_each_item_leaves_one_costed_log_row_for_the_jobs_key(authed, api_key):
    ModelVersion.objects.filter(name="sentiment").update(cost_per_request="0.002", input_cost_per_1k="0.01")

    job = submit(authed, {"inputs": REVIEWS}).json()

    rows = RequestLog.objects.filter(method=services.LOG_METHOD).order_by("request_id")
    items = BatchItem.objects.filter(job_id=job["id"])
    assert sorted(row.request_id for row in rows) == sorted(item.request_id for item in items)
    for row in rows:
        assert row.endpoint == f"/api/v1/batches/{job['id']}"
        assert row.api_key_id == api_key.pk
        assert (row.model_name, row.version, row.status_code) == ("sentiment", "sst2-head-minilm-v1", 200)
        assert row.input_tokens > 0
        assert row.cost_usd > 0
    detail = authed.get(f"/api/v1/batches/{job['id']}").json()
    assert detail["cost_usd"] == f"{sum(row.cost_usd for row in rows):.8f}"


@pytest.mark.django_db(transaction=True)
def test_a_chunk_run_twice_stores_logs_and_counts_each_item_once(authed):
    job_id = submit(authed, {"inputs": REVIEWS}).json()["id"]

    services.batch_chunk_process(job_id=job_id, start=0, stop=3)
    stored = list(BatchItem.objects.filter(job_id=job_id).order_by("index").values_list("result", flat=True))
    services.batch_chunk_process(job_id=job_id, start=0, stop=3)

    job = BatchJob.objects.get(pk=job_id)
    assert (job.status, job.succeeded_items, job.failed_items) == (JobStatus.COMPLETED, 3, 0)
    assert list(BatchItem.objects.filter(job_id=job_id).order_by("index").values_list("result", flat=True)) == stored
    assert RequestLog.objects.filter(method=services.LOG_METHOD).count() == 3


def test_a_revoked_keys_job_fails_at_its_next_chunk(authed, api_key):
    job_id = submit(authed, {"inputs": REVIEWS}).json()["id"]
    api_key.revoke()

    services.batch_chunk_process(job_id=job_id, start=0, stop=3)

    job = BatchJob.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED
    assert job.error == "This API key has been revoked."
    assert job.processed_items == 0


@pytest.mark.django_db(transaction=True)
def test_an_archived_model_fails_the_job_instead_of_each_item(authed):
    job_id = submit(authed, {"inputs": REVIEWS}).json()["id"]
    ModelVersion.objects.get(name="sentiment").archive()

    services.batch_chunk_process(job_id=job_id, start=0, stop=3)

    job = BatchJob.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED
    assert "No text-classification model 'sentiment:sst2-head-minilm-v1'" in job.error
    assert job.processed_items == 0
    assert not RequestLog.objects.filter(method=services.LOG_METHOD).exists()
    assert authed.get(f"/batch_result/{job_id}").json() == {"status": "failed", "error": job.error}


# Recovering lost work


def test_only_jobs_without_recent_progress_are_requeued(authed):
    stalled_id = submit(authed, {"inputs": REVIEWS}).json()["id"]
    lively_id = submit(authed, {"inputs": REVIEWS}).json()["id"]
    BatchJob.objects.filter(pk=stalled_id).update(last_activity_at=timezone.now() - timedelta(minutes=20))

    first = services.batch_jobs_requeue_stalled(stalled_for=timedelta(minutes=15))
    again = services.batch_jobs_requeue_stalled(stalled_for=timedelta(minutes=15))

    assert (first, again) == (1, 0)
    stalled, lively = BatchJob.objects.get(pk=stalled_id), BatchJob.objects.get(pk=lively_id)
    assert stalled.last_activity_at > timezone.now() - timedelta(minutes=1)
    assert stalled.status == lively.status == JobStatus.QUEUED


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_that_cannot_be_queued_is_refused_and_marked_failed(api_key):
    if connection.vendor != "postgresql":
        pytest.skip("the served gateway shares the test database: run on PostgreSQL (make test)")
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    env = {"DATABASE_URL": served_database_url(), "CELERY_BROKER_URL": nothing_listens, "WEB_WORKERS": "1"}

    with gunicorn(env) as base:
        status, _, body = http("POST", base + "/api/v1/batches", {"inputs": REVIEWS}, {"X-API-Key": api_key.plaintext})

    assert status == 503
    assert body["error"]["type"] == "queue_unavailable"
    job = BatchJob.objects.get()
    assert job.status == JobStatus.FAILED
    assert "broker is unreachable" in job.error
