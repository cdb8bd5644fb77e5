"""The content filter: SSNs and Luhn-valid card numbers kept out of answers (plain and streamed)
and out of what the gateway stores; `block` answers as the original service did."""

import json
import random

import pytest
from django_redis import get_redis_connection
from prometheus_client import REGISTRY

from gateway.filters import content, detectors
from gateway.filters.modes import BLOCKED_MESSAGE, FilterMode
from gateway.models import FilterPattern, RequestLog
from gateway.record.context import RequestContext
from inference.batches.models import BatchItem
from tests.servers import eventually

SSN = "123-45-6789"
CARD = "4111 1111 1111 1111"  # Luhn-valid
NOT_A_CARD = "4111 1111 1111 1112"  # one digit off: fails the Luhn check
ANSWER = f"Echo: my SSN is {SSN} and my card {CARD}, order {NOT_A_CARD}"
REDACTED = f"Echo: my SSN is [REDACTED:SSN] and my card [REDACTED:CARD], order {NOT_A_CARD}"


def _policy(mode=FilterMode.REDACT, patterns=()) -> content.Policy:
    return content.Policy(mode, (detectors.DigitRuns(), *patterns), "test")


def _redacted(text: str, policy=None) -> str:
    return content.filter_text(RequestContext(), policy or _policy(), text, target="answer")


def _streamed(pieces: list[str], policy=None) -> str:
    """What a client receives when the answer arrives in these pieces, one SSE chunk each."""
    guard = content.StreamFilter(RequestContext(), policy or _policy())
    received = []
    for number, piece in enumerate(pieces):
        final = number == len(pieces) - 1
        chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": "stop" if final else None}]}
        received.append(_content(guard.event(chunk, json.dumps(chunk).encode())))
    return "".join(received)


def _content(event: bytes | None) -> str:
    return "" if event is None else json.loads(event)["choices"][0]["delta"]["content"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"SSN {SSN}.", "SSN [REDACTED:SSN]."),
        ("SSN 123 45 6789", "SSN [REDACTED:SSN]"),
        ("area 000: 000-12-3456, 666-12-3456, 912-34-5678", "area 000: 000-12-3456, 666-12-3456, 912-34-5678"),
        ("advertised 078-05-1120", "advertised 078-05-1120"),
        (f"pay with {CARD}", "pay with [REDACTED:CARD]"),
        ("pay with 4111-1111-1111-1111", "pay with [REDACTED:CARD]"),
        ("pay with 4111111111111111", "pay with [REDACTED:CARD]"),
        ("amex 3782 822463 10005", "amex [REDACTED:CARD]"),
        (f"order {NOT_A_CARD}", f"order {NOT_A_CARD}"),
        ("order 4111111111111112", "order 4111111111111112"),
        ("id 41111111111111111111", "id 41111111111111111111"),  # 20 digits: no card is that long
        (f"ref 1234 {CARD} 12", "ref 1234 [REDACTED:CARD] 12"),
        ("in 2024 we sold 1,000 units", "in 2024 we sold 1,000 units"),
        ("count 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", "count 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"),
    ],
)
def test_detectors_mask_valid_numbers_only(text, expected):
    assert _redacted(text) == expected


def test_block_replaces_the_whole_text_and_off_passes_it():
    assert _redacted(f"SSN {SSN}", _policy(FilterMode.BLOCK)) == BLOCKED_MESSAGE
    assert _redacted(f"SSN {SSN}", _policy(FilterMode.OFF)) == f"SSN {SSN}"


def test_a_number_split_across_chunks_is_caught_wherever_it_is_cut():
    text = f"card {CARD} then SSN {SSN} and {NOT_A_CARD} in 2024."
    expected = _redacted(text)
    for cut in range(1, len(text)):
        assert _streamed([text[:cut], text[cut:]]) == expected, cut
    pieces = random.Random(7)
    for _ in range(200):
        cuts = sorted(pieces.sample(range(1, len(text)), 6))
        parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert _streamed(parts) == expected, parts


def test_a_stream_holds_back_only_a_trailing_run_that_could_still_become_a_match():
    guard = content.StreamFilter(RequestContext(), _policy())

    def passed(piece):
        chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
        return _content(guard.event(chunk, json.dumps(chunk).encode()))

    assert passed("Hello there, ") == "Hello there, "  # no digit at the end: nothing held
    assert passed("the year 2024") == "the year "  # 2024 may begin a card number
    assert passed(" was good") == "2024 was good"
    assert passed("SSN 123-4") == "SSN "
    assert passed("5-6789, card 4111 1111") == "[REDACTED:SSN], card "
    assert passed(" 1111 1111 and 12 34") == "[REDACTED:CARD] and 12 "  # "12" can begin neither
    assert passed("5 items") == "345 items"


def test_unchanged_events_go_out_as_the_upstream_sent_them_and_held_ones_not_at_all():
    guard = content.StreamFilter(RequestContext(), _policy())
    raw = b'{"id":"x","choices":[{"index":0,"delta":{"content":"plain words "}}]}'
    held = b'{"id":"x","choices":[{"index":0,"delta":{"content":"4111 "}}]}'
    last = b'{"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'

    assert guard.event(json.loads(raw), raw) is raw
    assert guard.event(json.loads(held), held) is None
    assert _content(guard.event(json.loads(last), last)) == "4111 "


def test_block_in_a_stream_sends_the_message_in_place_of_the_rest():
    assert _streamed(["fine so far, SSN 123-", "45-6789 and more", " text"], _policy(FilterMode.BLOCK)) == (
        "fine so far, SSN " + BLOCKED_MESSAGE
    )


def test_operator_patterns_are_applied_and_caught_across_chunks():
    email = detectors.Pattern("EMAIL", r"[\w.+-]+@[\w-]+\.[\w.]+")
    policy = _policy(patterns=(email,))

    assert _redacted("write to jane.doe@example.com today", policy) == "write to [REDACTED:EMAIL] today"
    assert _streamed(["write to jane.d", "oe@exam", "ple.com today"], policy) == "write to [REDACTED:EMAIL] today"


# Through the API, on the stand-in upstream (it echoes the last user message).


def _chat(authed, text: str, **extra):
    return authed.post(
        "/v1/chat/completions",
        {"model": "gpt", "messages": [{"role": "user", "content": text}], "temperature": 0, **extra},
        format="json",
    )


def _filtered_count(detector: str, mode: str, target: str) -> float:
    labels = {"detector": detector, "mode": mode, "target": target}
    return REGISTRY.get_sample_value("gateway_content_filtered_total", labels) or 0.0


def test_chat_answers_are_redacted_and_each_event_counted(authed, gpt, standin):
    before = _filtered_count("CARD", "redact", "answer")

    response = _chat(authed, ANSWER.removeprefix("Echo: "))

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == REDACTED
    assert _filtered_count("CARD", "redact", "answer") - before == 1
    assert RequestLog.objects.get().filtered == {"SSN": 1, "CARD": 1}


def test_streamed_answers_are_redacted_though_the_card_spans_four_events(authed, gpt, standin):
    response = _chat(authed, ANSWER.removeprefix("Echo: "), stream=True)
    events = [line[6:] for line in b"".join(response.streaming_content).decode().split("\n\n") if line]

    text = "".join(
        choice["delta"].get("content") or ""
        for event in events
        if event != "[DONE]"
        for choice in json.loads(event)["choices"]
    )
    assert text.split() == REDACTED.split()
    assert CARD not in text and SSN not in text
    assert eventually(lambda: RequestLog.objects.filter(filtered__CARD=1, filtered__SSN=1).exists())


def test_block_answers_the_original_services_message(authed, gpt, standin):
    gpt.content_filter = FilterMode.BLOCK
    gpt.save()

    response = _chat(authed, f"my SSN is {SSN}")

    assert response.json()["choices"][0]["message"]["content"] == BLOCKED_MESSAGE


def test_a_key_overrides_its_versions_policy(authed, api_key, gpt, standin):
    api_key.content_filter = FilterMode.OFF
    api_key.save()

    response = _chat(authed, f"my SSN is {SSN}")

    assert response.json()["choices"][0]["message"]["content"] == f"Echo: my SSN is {SSN}"


def test_nothing_filtered_reaches_the_cache_or_the_request_log(authed, gpt, standin, settings):
    settings.GATEWAY_LOG_REQUEST_TEXT = True

    first = _chat(authed, ANSWER.removeprefix("Echo: "))
    again = _chat(authed, ANSWER.removeprefix("Echo: "))

    assert again["X-Cache"] == "hit"
    assert again.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    redis = get_redis_connection("default")
    stored = [redis.get(key) for key in redis.keys("*gw:rc:*")]
    assert stored and all(b"[REDACTED:CARD]" in value for value in stored)
    assert not any(SSN.encode() in value or CARD.encode() in value for value in stored)
    texts = list(RequestLog.objects.values_list("input_text", flat=True))
    assert texts == [ANSWER.removeprefix("Echo: ").replace(SSN, "[REDACTED:SSN]").replace(CARD, "[REDACTED:CARD]")] * 2


def test_operators_add_patterns_in_the_admin(operator, authed, gpt, standin):
    refused = operator.post("/admin/gateway/filterpattern/add/", {"name": "EMAIL", "pattern": "(", "enabled": "on"})
    assert refused.status_code == 200 and not FilterPattern.objects.exists()

    saved = operator.post(
        "/admin/gateway/filterpattern/add/",
        {"name": "EMAIL", "pattern": r"[\w.+-]+@[\w-]+\.[\w.]+", "enabled": "on"},
    )
    assert saved.status_code == 302

    response = _chat(authed, "mail jane@example.com")
    assert response.json()["choices"][0]["message"]["content"] == "Echo: mail [REDACTED:EMAIL]"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_jobs", "default_models")
def test_batch_inputs_and_results_are_stored_filtered(authed):
    response = authed.post("/api/v1/batches", {"inputs": [f"my card {CARD} was charged twice, awful"]}, format="json")

    assert response.status_code == 202
    (item,) = BatchItem.objects.all()
    assert item.text == "my card [REDACTED:CARD] was charged twice, awful"
    assert item.result["label"] in {"POSITIVE", "NEGATIVE"}
    submitted = RequestLog.objects.get(endpoint="/api/v1/batches")
    assert submitted.filtered == {"CARD": 1}


def test_what_is_still_held_when_a_stream_ends_without_finish_reason_goes_out_before_done():
    guard = content.StreamFilter(RequestContext(), _policy())
    chunk = {"choices": [{"index": 0, "delta": {"content": "call 4111 1111 1111 1111"}}]}

    assert _content(guard.event(chunk, json.dumps(chunk).encode())) == "call "
    assert guard.rest()["choices"] == [{"index": 0, "delta": {"content": "[REDACTED:CARD]"}}]
    assert guard.rest() is None
