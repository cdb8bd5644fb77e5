"""The official openai SDK, unchanged, against the running gateway."""

import openai
import pytest

from gateway.models import RequestLog
from tests.factories import APIKeyFactory, ChatVersionFactory
from tests.servers import eventually

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sdk(live_server, provider, default_models):
    ChatVersionFactory(name="gpt", version="a", provider=provider)
    key = APIKeyFactory()
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key.plaintext, max_retries=0)


def test_chat_completion(sdk, standin):
    completion = sdk.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "ping pong"}])

    assert completion.choices[0].message.content == "Echo: ping pong"
    assert completion.usage.completion_tokens == 3
    row = RequestLog.objects.get(endpoint="/v1/chat/completions")
    assert row.status_code == 200
    assert row.output_tokens == completion.usage.completion_tokens
    assert row.input_tokens == completion.usage.prompt_tokens
    assert row.cost_usd > 0


def test_streaming_chat_completion_with_usage(sdk, standin):
    stream = sdk.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.split() == ["Echo:", "a", "b", "c"]
    assert chunks[-1].usage.completion_tokens == 4
    row = eventually(lambda: RequestLog.objects.filter(endpoint="/v1/chat/completions").first())
    assert row.output_tokens == 4
    assert row.ttft_ms is not None


def test_embeddings_from_the_local_model(sdk):
    result = sdk.embeddings.create(model="embeddings", input=["I loved it", "what a bore"])

    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 384
    assert sum(v * v for v in result.data[0].embedding) == pytest.approx(1.0, abs=1e-3)
    assert result.usage.prompt_tokens > 0
    row = RequestLog.objects.get(endpoint="/v1/embeddings")
    assert row.input_tokens == result.usage.prompt_tokens


def test_embeddings_as_floats_when_asked(sdk):
    result = sdk.embeddings.create(model="embeddings", input="hello", encoding_format="float")

    assert len(result.data[0].embedding) == 384


def test_models_list(sdk):
    names = {model.id for model in sdk.models.list()}

    assert {"gpt", "sentiment", "embeddings"} <= names


def test_errors_reach_the_sdk_as_its_exceptions(sdk, live_server):
    bad = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="gw_nope", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as excinfo:
        bad.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert "Malformed API key" in excinfo.value.message

    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
