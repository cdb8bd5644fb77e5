"""What an LLM request may cost is bounded before it runs: the provider's parameter allowlist,
the version's max_tokens cap and default, reservations of n answers, message limits, pins of
production and staging versions only, and a deadline on every call and stream."""

import json
import time

import pytest

from gateway.models import RequestLog
from inference.models import Status
from tests.factories import APIKeyFactory, ChatVersionFactory

CHAT = "/v1/chat/completions"


def _ask(client, model="gpt", text="hello there", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return client.post(CHAT, body, format="json")


def test_a_parameter_outside_the_providers_allowlist_is_refused_by_name_before_the_upstream_is_called(
    authed, gpt, standin
):
    response = _ask(authed, tools=[{"type": "function", "function": {"name": "f"}}], modalities=["audio"])

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error["fields"]) == {"tools", "modalities"}
    assert "modalities" in error["message"] and "tools" in error["message"]
    assert standin.calls() == []


def test_parameters_the_api_treats_as_optional_hints_are_dropped_not_refused(authed, gpt, standin):
    response = _ask(authed, store=True, service_tier="priority", metadata={"a": "b"})

    assert response.status_code == 200
    sent = standin.calls()[0]["body"]
    assert not {"store", "service_tier", "metadata"} & set(sent)


def test_an_operator_can_allow_a_parameter_for_a_provider(authed, gpt, standin):
    gpt.provider.allowed_parameters = [*gpt.provider.allowed_parameters, "tools"]
    gpt.provider.save()

    assert _ask(authed, tools=[]).status_code == 200
    assert standin.calls()[0]["body"]["tools"] == []


def test_a_request_without_max_tokens_gets_the_versions_default_and_one_over_the_cap_is_refused(authed, gpt, standin):
    gpt.max_tokens_cap, gpt.default_max_tokens = 1000, 500
    gpt.save()

    assert _ask(authed).status_code == 200
    over = _ask(authed, max_tokens=1001)

    assert standin.calls()[0]["body"]["max_tokens"] == 500
    assert over.status_code == 400
    assert over.json()["error"]["param"] == "max_tokens"
    assert "At most 1000" in json.dumps(over.json())
    assert len(standin.calls()) == 1


def test_the_reservation_counts_n_answers_of_max_tokens_plus_the_prompt(client, gpt, standin, roomy_window):
    key = APIKeyFactory(tokens_per_minute=700)
    roomy_window(key, 5)
    client.credentials(HTTP_X_API_KEY=key.plaintext)

    one = _ask(client, n=1)  # about 20 prompt tokens + 500 (the default max_tokens)
    two = _ask(client, n=2, text="another question")  # + 2 x 500: past 700

    assert one.status_code == 200
    assert two.status_code == 429
    assert "may use up to 10" in two.json()["error"]["message"]


@pytest.mark.parametrize(
    ("messages", "field_error"),
    [
        ([{"role": "user", "content": "hi"}] * 257, "no more than 256 messages"),
        ([{"role": "user", "content": "x" * 65_537}], "no more than 65536 characters"),
        ([{"role": "user", "content": [{"type": "text", "text": "x" * 65_537}]}], "no more than 65536 characters"),
    ],
    ids=["too-many-messages", "message-too-long", "content-parts-too-long"],
)
def test_message_count_and_size_are_bounded(authed, gpt, standin, messages, field_error):
    response = authed.post(CHAT, {"model": "gpt", "messages": messages}, format="json")

    assert response.status_code == 400
    assert field_error in json.dumps(response.json())
    assert standin.calls() == []


@pytest.mark.parametrize("field", ["max_tokens", "n", "temperature", "stream"])
def test_numbers_and_flags_sent_as_strings_are_refused(authed, gpt, standin, field):
    response = _ask(authed, **{field: "1"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == field


def test_a_pinned_draft_is_refused_unless_the_key_may_pin_drafts(client, provider, standin):
    ChatVersionFactory(name="gpt", version="a", provider=provider)
    ChatVersionFactory(name="gpt", version="free-draft", provider=provider, status=Status.DRAFT)
    ChatVersionFactory(name="gpt", version="next", provider=provider, status=Status.STAGING)
    plain, trusted = APIKeyFactory(), APIKeyFactory(may_pin_drafts=True)

    client.credentials(HTTP_X_API_KEY=plain.plaintext)
    refused = _ask(client, model="gpt:free-draft")
    staging = _ask(client, model="gpt:next")
    client.credentials(HTTP_X_API_KEY=trusted.plaintext)
    allowed = _ask(client, model="gpt:free-draft")

    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_denied"
    assert "gpt:free-draft is draft" in refused.json()["error"]["message"]
    assert staging.status_code == 200
    assert allowed.status_code == 200
    assert [call["body"]["model"] for call in standin.calls()] == ["upstream-next", "upstream-free-draft"]


def test_an_upstream_call_ends_at_its_deadline_whatever_the_retries(authed, gpt, standin, settings):
    settings.GATEWAY_UPSTREAM_DEADLINE_S = 0.5
    standin.script("upstream-a", [{"delay": 1.5}] * 3)

    started = time.monotonic()
    response = _ask(authed)

    assert response.status_code == 502
    assert time.monotonic() - started < 1.5
    assert len(standin.calls()) == 1
    assert "deadline" in RequestLog.objects.get().route[-1]


def test_a_stream_past_its_deadline_ends_with_an_error_event(authed, gpt, standin, settings):
    settings.GATEWAY_STREAM_DEADLINE_S = 0

    response = authed.post(
        CHAT, {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "one two"}]}, format="json"
    )
    events = b"".join(response.streaming_content).decode()

    assert '"type": "stream_deadline"' in events
    assert "[DONE]" not in events
    row = RequestLog.objects.get()
    assert (row.truncated, row.error_type) == (True, "stream_deadline")
