"""Limits, budgets, the response cache and experiments on the LLM path."""

from decimal import Decimal

from gateway.models import RequestLog
from tests.factories import APIKeyFactory, ChatVersionFactory, started_experiment


def _ask(client, key, text="hello", **extra):
    body = {"model": "gpt", "messages": [{"role": "user", "content": text}], **extra}
    return client.post("/v1/chat/completions", body, format="json", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")


def test_deterministic_chat_is_answered_from_the_cache(client, api_key, gpt, standin):
    first = _ask(client, api_key, "same question", temperature=0)
    second = _ask(client, api_key, "same question", temperature=0)

    assert second.json() == first.json()
    assert second["X-Cache"] == "hit"
    assert len(standin.calls()) == 1
    rows = list(RequestLog.objects.order_by("created_at"))
    assert [r.cache_hit for r in rows] == [False, True]
    assert rows[1].cost_usd == 0
    assert rows[1].cost_saved_usd == rows[0].cost_usd


def test_sampled_chat_is_not_cached(client, api_key, gpt, standin):
    _ask(client, api_key, "same question")
    _ask(client, api_key, "same question")

    assert len(standin.calls()) == 2


def test_chat_spend_is_held_to_the_keys_budget(client, gpt, standin):
    gpt.input_cost_per_1k, gpt.output_cost_per_1k = Decimal("1"), Decimal("2")
    gpt.save()
    key = APIKeyFactory(budget_usd=Decimal("0.1"), budget_period="day")

    statuses = [_ask(client, key, f"question {i}", max_tokens=10).status_code for i in range(20)]

    assert statuses[0] == 200
    assert 402 in statuses
    spent = sum(r.cost_usd for r in RequestLog.objects.filter(api_key=key))
    assert spent <= Decimal("0.1")
    assert RequestLog.objects.filter(status_code=402, error_type="budget_exceeded").exists()


def test_chat_tokens_per_minute_limit_answers_429(client, gpt, standin, roomy_window):
    key = APIKeyFactory(tokens_per_minute=100)
    roomy_window(key, 10)

    first = _ask(client, key, "hi", max_tokens=40)
    # What the first used, plus this one's upper bound (prompt + max_tokens), is over 100.
    second = _ask(client, key, "hi again", max_tokens=90)

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "rate_limited"
    assert "Retry-After" in second


def test_running_experiment_splits_chat_traffic(client, api_key, gpt, provider, standin):
    candidate = ChatVersionFactory(name="gpt", version="b", provider=provider, status="staging")
    started_experiment(("control", gpt, 50), ("candidate", candidate, 50), model_name="gpt")

    seen = {}
    for user in range(20):
        response = client.post(
            "/v1/chat/completions",
            {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}",
            HTTP_X_USER_ID=f"user-{user}",
        )
        seen.setdefault(response["X-Experiment-Variant"], set()).add(response["X-Model-Version"])

    assert seen == {"control": {"gpt:a"}, "candidate": {"gpt:b"}}
    assert set(RequestLog.objects.values_list("variant", flat=True)) == {"control", "candidate"}


def test_streamed_chat_settles_its_reservation(client, gpt, standin):
    key = APIKeyFactory(budget_usd=Decimal("1"), budget_period="day")

    response = client.post(
        "/v1/chat/completions",
        {"model": "gpt", "stream": True, "max_tokens": 50, "messages": [{"role": "user", "content": "a b"}]},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {key.plaintext}",
    )
    b"".join(response.streaming_content)

    from gateway.limits import usage

    row = RequestLog.objects.get()
    assert usage.key_usage(key).spent_usd == row.cost_usd  # the estimate was replaced by the real cost
