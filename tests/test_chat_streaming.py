import json

from gateway.models import RequestLog


def _stream(client, text="one two three", **extra):
    body = {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": text}], **extra}
    response = client.post("/v1/chat/completions", body, format="json")
    events = []
    if response.streaming:
        raw = b"".join(response.streaming_content).decode()
        events = [block.removeprefix("data: ") for block in raw.split("\n\n") if block]
    return response, events


def _chunks(events):
    return [json.loads(e) for e in events if e != "[DONE]"]


def test_stream_relays_events_and_logs_cost_from_usage(authed, gpt, standin):
    response, events = _stream(authed, "one two three")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert events[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in _chunks(events) if c["choices"])
    assert text.split() == ["Echo:", "one", "two", "three"]
    # The client did not ask for usage, so it gets none, but the gateway still costs the call.
    assert all("usage" not in c or c["usage"] is None for c in _chunks(events))
    assert standin.calls()[0]["body"]["stream_options"] == {"include_usage": True}
    row = RequestLog.objects.get()
    assert row.status_code == 200
    assert (row.input_tokens, row.output_tokens) == (7, 4)
    assert row.cost_usd > 0
    assert row.ttft_ms is not None and row.ttft_ms <= row.latency_ms
    assert row.truncated is False


def test_stream_includes_usage_when_asked(authed, gpt, standin):
    _, events = _stream(authed, "hi", stream_options={"include_usage": True})

    usage_chunks = [c for c in _chunks(events) if c.get("usage")]
    assert len(usage_chunks) == 1
    assert usage_chunks[0]["choices"] == []
    assert usage_chunks[0]["usage"]["completion_tokens"] == 2


def test_stream_broken_after_first_byte_ends_with_an_error_event(authed, gpt, standin):
    standin.script("upstream-a", [{"break_after": 2}])

    response, events = _stream(authed, "a b c d e f")

    assert response.status_code == 200  # already sent before the break
    last = json.loads(events[-1])
    assert last["error"]["type"] == "upstream_stream_broken"
    assert "[DONE]" not in events
    row = RequestLog.objects.get()
    assert row.truncated is True
    assert row.error_type == "upstream_stream_broken"


def test_stream_failing_before_first_byte_is_retried(authed, gpt, standin):
    standin.script("upstream-a", [{"status": 503}, "ok"])

    response, events = _stream(authed)

    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    assert RequestLog.objects.get().attempts == 2


def test_stream_falls_back_before_first_byte(authed, gpt, backup, standin):
    standin.script("upstream-a", [{"status": 500}] * 3)

    response, events = _stream(authed)

    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    assert response["X-Model-Version"] == "gpt-backup:b"
    row = RequestLog.objects.get()
    assert row.fallback_used is True
    assert row.model_version == backup


def test_stream_with_every_upstream_failing_is_a_json_502(authed, gpt, standin):
    standin.script("upstream-a", [{"status": 500}] * 3)

    response, _ = _stream(authed)

    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
