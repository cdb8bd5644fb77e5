import json
import logging
from decimal import Decimal

import pytest

from gateway.models import RequestLog
from gateway.record.access_log import JsonFormatter

pytestmark = pytest.mark.usefixtures("default_models")


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def access_lines():
    """What the gateway.access logger writes, formatted as in production."""
    handler = _Lines()
    logger = logging.getLogger("gateway.access")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_each_request_writes_one_json_line_with_its_outcome(authed, api_key, access_lines):
    response = authed.post("/api/v1/predict", {"text": "my private diary entry"}, format="json")

    assert len(access_lines) == 1
    line = json.loads(access_lines[0])
    assert line["logger"] == "gateway.access"
    assert line["request_id"] == response["X-Request-ID"]
    assert line["key_prefix"] == api_key.prefix
    assert line["model"] == "sentiment"
    assert line["version"] == "sst2-head-minilm-v1"
    assert line["status"] == 200
    assert line["endpoint"] == "predict"
    assert line["path"] == "/api/v1/predict"
    assert line["latency_ms"] > 0
    assert line["input_tokens"] > 0
    assert Decimal(line["cost_usd"]) == RequestLog.objects.get(request_id=line["request_id"]).cost_usd
    assert line["cache_hit"] is False


def test_log_lines_hold_no_secret_and_no_request_text(authed, api_key, client, access_lines):
    authed.post("/api/v1/predict", {"text": "my private diary entry"}, format="json")
    authed.post("/api/v1/embeddings", {"input": ["another private text"]}, format="json")
    authed.post("/api/v1/predict", {"text": "private", "model": "user-typed-model-name"}, format="json")

    assert len(access_lines) == 3
    everything = "\n".join(access_lines)
    assert api_key.plaintext.split(".")[1] not in everything
    assert "private" not in everything
    assert "user-typed-model-name" not in everything  # an unresolved name is client input
    assert json.loads(access_lines[2])["error_type"] == "model_not_found"


def test_errors_are_logged_with_their_type(client, access_lines):
    client.post("/api/v1/predict", {"text": "x"}, format="json")

    line = json.loads(access_lines[0])
    assert line["status"] == 401
    assert line["error_type"] == "authentication_error"
    assert line["key_prefix"] == ""
