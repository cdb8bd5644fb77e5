"""The real local LLM (SmolLM2-135M on llama.cpp's server) end to end through the gateway."""

import sys

import openai
import pytest
from django.core.management import call_command

from gateway.models import RequestLog
from tests.factories import APIKeyFactory
from tests.servers import eventually, free_port, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def local_llm_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    command = [sys.executable, "manage.py", "runlocalllm", "--threads", "2", "--ctx", "1024"]
    with serving(command, {"LOCAL_LLM_URL": url}, url + "/models"):
        yield url


@pytest.fixture
def sdk(live_server, local_llm_url, settings, transactional_db):
    settings.LOCAL_LLM_URL = local_llm_url
    call_command("bootstrap", verbosity=0)
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=APIKeyFactory().plaintext, max_retries=0)


def test_local_llm_answers_through_the_gateway(sdk):
    completion = sdk.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=8,
        temperature=0,
    )

    assert completion.choices[0].message.content.strip()
    assert 0 < completion.usage.completion_tokens <= 8
    row = RequestLog.objects.get(endpoint="/v1/chat/completions")
    assert row.status_code == 200
    assert row.provider == "local"
    assert row.model_name == "smollm2"
    assert row.output_tokens == completion.usage.completion_tokens
    assert row.cost_usd > 0


def test_local_llm_streams_through_the_gateway(sdk):
    stream = sdk.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage.completion_tokens > 0
    row = eventually(lambda: RequestLog.objects.filter(endpoint="/v1/chat/completions").first())
    assert row.truncated is False
    assert row.output_tokens == chunks[-1].usage.completion_tokens
    # llama.cpp's server reports no usage in streams: the gateway counts and says so.
    assert row.usage_estimated is True
