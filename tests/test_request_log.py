from decimal import Decimal

import pytest
from django.test import override_settings

from gateway.models import RequestLog
from inference.models import ModelVersion

pytestmark = pytest.mark.usefixtures("default_models")


def _only_row(response):
    rows = list(RequestLog.objects.all())
    assert len(rows) == 1
    row = rows[0]
    assert str(row.request_id) == response["X-Request-ID"]
    assert row.status_code == response.status_code
    assert row.latency_ms > 0
    return row


def test_answered_prediction_leaves_one_row_with_tokens_and_cost(authed, api_key):
    version = ModelVersion.objects.get(name="sentiment")
    version.input_cost_per_1k = Decimal("0.002")
    version.cost_per_request = Decimal("0.0001")
    version.save()

    response = authed.post("/api/v1/predict", {"text": "I loved it"}, format="json", REMOTE_ADDR="10.1.2.3")

    row = _only_row(response)
    assert row.api_key == api_key
    assert row.key_prefix == api_key.prefix
    assert row.method == "POST"
    assert row.endpoint == "/api/v1/predict"
    assert row.model_name == "sentiment"
    assert row.model_version == version
    assert row.version == version.version
    assert row.error_type == ""
    assert row.input_tokens == 5  # [CLS] i loved it [SEP]
    assert row.output_tokens == 0
    assert row.cost_usd == Decimal("0.0001") + Decimal("0.002") * 5 / 1000
    assert row.cache_hit is False
    assert row.client_ip == "10.1.2.3"
    assert row.input_text == ""


def test_401_is_logged_with_the_presented_prefix(client, api_key):
    api_key.revoke()

    response = client.post("/api/v1/predict", {"text": "x"}, format="json", HTTP_X_API_KEY=api_key.plaintext)

    row = _only_row(response)
    assert row.status_code == 401
    assert row.error_type == "authentication_error"
    assert row.key_prefix == api_key.prefix
    assert row.model_name == ""


def test_401_without_a_key_is_logged(client):
    row = _only_row(client.post("/api/v1/predict", {"text": "x"}, format="json"))

    assert row.api_key is None
    assert row.error_type == "authentication_error"


def test_400_is_logged_with_its_error_type(authed, api_key):
    row = _only_row(authed.post("/api/v1/predict", {"text": ""}, format="json"))

    assert row.status_code == 400
    assert row.error_type == "invalid_request"
    assert row.api_key == api_key


def test_404_for_unknown_model_is_logged_with_the_requested_name_apart(authed):
    row = _only_row(authed.post("/api/v1/predict", {"text": "x", "model": "ghost"}, format="json"))

    assert row.error_type == "model_not_found"
    assert row.requested_model == "ghost"
    assert row.model_name == ""  # nothing resolved: the model column never holds client input


def test_a_long_requested_name_is_truncated_and_the_resolved_name_kept(authed):
    long_name = "=HYPERLINK(" + "x" * 140  # within the API's 160, over the log's 100
    missing = _only_row(authed.post("/api/v1/predict", {"text": "x", "model": long_name}, format="json"))
    RequestLog.objects.all().delete()
    pinned = _only_row(
        authed.post("/api/v1/predict", {"text": "x", "model": "sentiment:sst2-head-minilm-v1"}, format="json")
    )

    assert missing.requested_model == long_name[:100]
    assert (pinned.model_name, pinned.requested_model) == ("sentiment", "sentiment:sst2-head-minilm-v1")


def test_each_request_gets_its_own_row(authed):
    for text in ("one", "two", "three"):
        authed.post("/api/v1/predict", {"text": text}, format="json")
    authed.post("/api/v1/embeddings", {"input": ["a", "b"]}, format="json")

    assert RequestLog.objects.count() == 4
    assert RequestLog.objects.filter(endpoint="/api/v1/embeddings", model_name="embeddings").count() == 1


def test_health_and_admin_are_not_logged(client):
    client.get("/health")
    client.get("/admin/login/")

    assert not RequestLog.objects.exists()


@override_settings(GATEWAY_LOG_REQUEST_TEXT=True)
def test_input_text_is_stored_only_when_enabled(authed):
    row = _only_row(authed.post("/api/v1/predict", {"text": "I loved it"}, format="json"))

    assert row.input_text == "I loved it"


@override_settings(GATEWAY_TRUST_X_FORWARDED_FOR=True)
def test_client_ip_comes_from_the_proxy_header_when_trusted(authed):
    row = _only_row(
        authed.post("/api/v1/predict", {"text": "x"}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.1")
    )

    assert row.client_ip == "203.0.113.9"
