import json
from decimal import Decimal

import pytest

from gateway.models import RequestLog
from tests.factories import ChatVersionFactory

CHAT = "/v1/chat/completions"


def _ask(client, text="hello there", model="gpt", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return client.post(CHAT, body, format="json")


def _row():
    return RequestLog.objects.get()


def test_completion_is_passed_through_and_costed_from_usage(authed, gpt, standin):
    response = _ask(authed, "what is two plus two")

    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Echo: what is two plus two"
    assert response["X-Model-Version"] == "gpt:a"
    row = _row()
    assert (row.input_tokens, row.output_tokens) == (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
    expected = Decimal("0.001") * row.input_tokens / 1000 + Decimal("0.002") * row.output_tokens / 1000
    assert row.cost_usd == expected
    assert (row.input_price_per_1k, row.output_price_per_1k) == (Decimal("0.001"), Decimal("0.002"))
    assert row.provider == "standin"
    assert row.attempts == 1
    assert row.model_version == gpt
    assert row.price_missing is False


def test_upstream_gets_the_provider_key_and_model_never_the_gateway_key(authed, api_key, gpt, standin):
    _ask(authed)

    (call,) = standin.calls()
    assert call["headers"]["Authorization"] == "Bearer sk-standin-secret"
    assert api_key.plaintext not in json.dumps(call)
    assert call["body"]["model"] == "upstream-a"


@pytest.mark.parametrize(
    "failure",
    [{"status": 500}, {"status": 502}, {"status": 429, "retry_after": "0"}, {"delay": 3}],
    ids=["500", "502", "429-retry-after", "timeout"],
)
def test_transient_failures_are_retried(authed, gpt, standin, failure):
    gpt.provider.timeout_s = 1.0
    gpt.provider.save()
    standin.script("upstream-a", [failure, "ok"])

    response = _ask(authed)

    assert response.status_code == 200
    assert _row().attempts == 2
    assert len(standin.calls("upstream-a")) == 2


def test_retries_stop_at_the_providers_limit_and_answer_502(authed, gpt, standin):
    standin.script("upstream-a", [{"status": 500}] * 5)

    response = _ask(authed)

    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    row = _row()
    assert row.status_code == 502
    assert row.attempts == 3  # max_retries=2 after the first
    assert row.error_type == "upstream_error"


def test_client_errors_from_upstream_are_not_retried_and_their_body_stays_in_the_log(authed, gpt, standin, caplog):
    standin.script("upstream-a", [{"status": 400, "message": "max_tokens is too large for org-secret-7"}])

    response = _ask(authed)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "upstream_refused"
    assert "org-secret-7" not in response.content.decode() and "standin" not in response.content.decode()
    assert len(standin.calls()) == 1
    logged = [r.getMessage() for r in caplog.records if response["X-Request-ID"] in r.getMessage()]
    assert any("org-secret-7" in line for line in logged)


def test_failing_version_falls_back_along_the_chain(authed, gpt, backup, standin):
    standin.script("upstream-a", [{"status": 500}] * 3)

    response = _ask(authed)

    assert response.status_code == 200
    assert response["X-Model-Version"] == "gpt-backup:b"
    row = _row()
    assert row.fallback_used is True
    assert row.model_version == backup
    assert row.attempts == 4
    assert row.route[0].startswith("gpt:a: ") and row.route[1] == "gpt-backup:b: ok"


def test_long_retry_after_falls_back_at_once(authed, gpt, backup, standin, settings):
    settings.UPSTREAM_MAX_RETRY_AFTER_S = 5
    standin.script("upstream-a", [{"status": 429, "retry_after": "120"}])

    response = _ask(authed)

    assert response.status_code == 200
    assert len(standin.calls("upstream-a")) == 1
    assert _row().model_version == backup


def test_unpriced_version_is_flagged_not_silently_free(authed, provider, standin):
    ChatVersionFactory(name="free", version="1", provider=provider, input_cost_per_1k=0, output_cost_per_1k=0)

    assert _ask(authed, model="free").status_code == 200

    row = _row()
    assert row.price_missing is True
    assert row.cost_usd == 0


def test_key_scoped_to_other_models_is_refused(client, gpt, standin):
    from tests.factories import APIKeyFactory

    key = APIKeyFactory(allowed_models=["other"])
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")

    response = _ask(client)

    assert response.status_code == 403
    assert standin.calls() == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt"}, "messages"),
        ({"model": "gpt", "messages": []}, "messages"),
        ({"model": "gpt", "messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ({"model": "gpt", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt", "messages": [{"role": "user", "content": "x"}], "temperature": 5}, "temperature"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
    ids=["no-messages", "empty-messages", "bad-role", "zero-max-tokens", "hot-temperature", "model-number"],
)
def test_invalid_chat_requests_get_openai_shaped_400s(authed, gpt, body, param):
    response = authed.post(CHAT, body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == error["code"] == "invalid_request"
    assert error["param"] == param
    assert error["message"]


def test_unknown_model_is_404(authed, standin, db):
    response = _ask(authed, model="nope")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "model_not_found"
