import json

import pytest
from django.test import override_settings

pytestmark = pytest.mark.usefixtures("default_models")


def _assert_error(response, status, error_type):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == error_type
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/predict", {"text": ""}, "text"),
        ("/api/v1/predict", {"text": "   "}, "text"),
        ("/api/v1/predict", {}, "text"),
        ("/api/v1/predict", {"text": 42}, "text"),
        ("/api/v1/predict", {"text": None}, "text"),
        ("/api/v1/predict", {"text": ["a"]}, "text"),
        ("/api/v1/predict", {"text": {"a": 1}}, "text"),
        ("/api/v1/predict", {"text": True}, "text"),
        ("/api/v1/predict", {"text": "x" * 4001}, "text"),
        ("/api/v1/predict", {"text": "ok", "model": 7}, "model"),
        ("/api/v1/predict", ["I loved it"], "non_field_errors"),
        ("/predict", {"text": ""}, "text"),
        ("/api/v1/embeddings", {"input": ""}, "input"),
        ("/api/v1/embeddings", {"input": []}, "input"),
        ("/api/v1/embeddings", {"input": [1, 2]}, "input"),
        ("/api/v1/embeddings", {"input": ["ok", " "]}, "input"),
        ("/api/v1/embeddings", {}, "input"),
        ("/api/v1/embeddings", {"input": ["x" * 4001]}, "text"),
        ("/api/v1/embeddings", {"input": ["a"] * 257}, "input"),
    ],
    ids=[
        "empty",
        "blank",
        "missing",
        "number",
        "null",
        "list",
        "object",
        "bool",
        "too-long",
        "model-number",
        "body-is-list",
        "seed-empty",
        "emb-empty",
        "emb-empty-list",
        "emb-numbers",
        "emb-blank-item",
        "emb-missing",
        "emb-too-long",
        "emb-too-many",
    ],
)
def test_bad_input_is_a_400_with_field_errors(authed, path, body, field):
    error = _assert_error(authed.post(path, body, format="json"), 400, "invalid_request")

    assert field in error["fields"]


@pytest.mark.parametrize("path", ["/api/v1/predict", "/api/v1/embeddings", "/predict"])
def test_invalid_json_is_a_400(authed, path):
    response = authed.post(path, data='{"text": "unterminated', content_type="application/json")

    _assert_error(response, 400, "invalid_request")


def test_unsupported_content_type_is_a_415(authed):
    response = authed.post("/api/v1/predict", data="I loved it", content_type="text/plain")

    _assert_error(response, 415, "unsupported_media_type")


@override_settings(GATEWAY_MAX_BODY_BYTES=1000)
def test_body_over_the_limit_is_a_413(authed):
    response = authed.post("/api/v1/predict", data=json.dumps({"text": "a" * 2000}), content_type="application/json")

    _assert_error(response, 413, "payload_too_large")


def test_wrong_method_is_a_405(authed):
    _assert_error(authed.get("/api/v1/predict"), 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/v2/predict"])
def test_unknown_path_is_a_json_404(authed, path):
    _assert_error(authed.post(path, {"text": "x"}, format="json"), 404, "not_found")


def test_model_that_cannot_load_is_a_503(authed, monkeypatch):
    from inference import pool

    monkeypatch.setattr(pool, "batcher_for", _broken_batcher)

    _assert_error(authed.post("/api/v1/predict", {"text": "x"}, format="json"), 503, "model_unavailable")


def _broken_batcher(version):
    raise OSError(f"weights for {version} are missing")
