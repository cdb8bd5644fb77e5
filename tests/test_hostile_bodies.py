"""Hostile bodies get a 400, never a 500, and no error tells a caller about the gateway's insides."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError

from inference.batches import processing

pytestmark = pytest.mark.usefixtures("default_models")

DEEP = "[" * 100_000 + "]" * 100_000
JUST_TOO_DEEP = '{"text": "x", "model": ' + "[" * 32 + "]" * 32 + "}"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/predict",
        "/predict",
        "/api/v1/embeddings",
        "/v1/embeddings",
        "/v1/chat/completions",
        "/api/v1/batches",
        "/batch_predict",
        "/api/v1/feedback",
    ],
)
@pytest.mark.parametrize("body", [DEEP, JUST_TOO_DEEP], ids=["past-the-recursion-limit", "past-the-depth-limit"])
def test_json_nested_too_deep_is_a_400_on_every_endpoint(authed, path, body):
    response = authed.post(path, data=body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert "nested deeper than 32 levels" in error["message"]


def test_json_within_the_depth_limit_is_read_as_before(authed):
    body = '{"text": "I loved it", "nested": ' + "[" * 30 + "]" * 30 + "}"

    assert authed.post("/api/v1/predict", data=body, content_type="application/json").status_code == 200


def test_a_deep_line_in_a_jsonl_upload_is_a_400_naming_the_line(authed):
    upload = SimpleUploadedFile("items.jsonl", b'"fine"\n' + DEEP.encode() + b"\n", content_type="application/jsonl")

    response = authed.post("/api/v1/batches", {"file": upload}, format="multipart")

    assert response.status_code == 400
    assert "Line 2" in str(response.json()["error"]["fields"]["file"])


def test_a_job_given_up_on_a_database_error_tells_its_owner_no_host_port_or_user():
    error = OperationalError(
        'connection to server at "db.internal" (10.0.0.5), port 5432 failed: '
        'FATAL: password authentication failed for user "gateway"'
    )

    reason = processing.failure_reason("a-job", error)

    assert reason == "The gateway's database could not be reached."
