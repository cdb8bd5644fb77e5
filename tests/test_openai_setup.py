"""`bootstrap --openai` (and `bootstrap` while OPENAI_API_KEY is set): the original service's
cost-optimized routing, answer cap, retries and fallbacks, proven with the real openai SDK."""

import os
import subprocess
import sys
from decimal import Decimal

import openai
import pytest
from django.core.management import call_command

from gateway.models import RequestLog
from inference.models import FallbackChain, ModelVersion, Provider, RoutingRule, Status
from inference.openai_setup import CHEAP, STRONG
from tests.factories import APIKeyFactory
from tests.servers import ROOT, served_database_url

pytestmark = pytest.mark.django_db(transaction=True)

OPENAI_KEY = "sk-test-openai"
CHEAP_MODEL, STRONG_MODEL, LOCAL_MODEL = CHEAP["upstream_model"], STRONG["upstream_model"], "smollm2"
SHORT = "What is 2 + 2?"
COMPLEX = "Compare the economic policies of Keynes and Hayek and their effects on modern central banking practice."
LONG = "Write a short poem about the sea, the wind, the gulls, the boats in the harbour and the light at dusk."


@pytest.fixture
def bootstrapped(standin, settings, monkeypatch):
    """`bootstrap` with OPENAI_API_KEY set, the OpenAI base URL and the local LLM at the stand-in."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    settings.OPENAI_BASE_URL = settings.LOCAL_LLM_URL = standin.url
    call_command("bootstrap", verbosity=0)


@pytest.fixture
def sdk(live_server, bootstrapped):
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=APIKeyFactory().plaintext, max_retries=0)


def _ask(sdk, prompt: str):
    raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": prompt}])
    return raw.headers["X-Model-Version"], raw.parse()


def _last_row() -> RequestLog:
    return RequestLog.objects.filter(endpoint="/v1/chat/completions").order_by("created_at").last()


def test_bootstrap_registers_the_set_up_when_the_key_is_set(standin):
    """As deployments run it: a process with the key and base URL in its environment."""
    env = {"DATABASE_URL": served_database_url(), "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": standin.url}
    done = subprocess.run(
        [sys.executable, "manage.py", "bootstrap"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    assert "Registered gpt-4o:2024-08-06." in done.stdout
    provider = Provider.objects.get(name="openai")
    assert (provider.base_url, provider.api_key_env, provider.max_retries) == (standin.url, "OPENAI_API_KEY", 2)
    cheap = ModelVersion.objects.get(name=CHEAP["name"])
    strong = ModelVersion.objects.get(name=STRONG["name"])
    assert cheap.status == strong.status == Status.PRODUCTION
    assert (cheap.input_cost_per_1k, cheap.output_cost_per_1k) == (Decimal("0.00015"), Decimal("0.0006"))
    assert (strong.input_cost_per_1k, strong.output_cost_per_1k) == (Decimal("0.0025"), Decimal("0.01"))
    assert cheap.default_max_tokens == strong.default_max_tokens == 500
    rules = list(RoutingRule.objects.filter(model_name="auto"))
    assert [(r.name, r.target.name) for r in rules] == [
        ("short-prompts-to-cheap", "gpt-4o-mini"),
        ("complex-prompts-to-strong", "gpt-4o"),
        ("everything-else-to-cheap", "gpt-4o-mini"),
    ]
    chain = [step.version.name for step in FallbackChain.objects.get(model_name="gpt-4o").steps.all()]
    assert chain == ["gpt-4o-mini", "smollm2"]


def test_short_prompts_take_the_cheap_model_capped_at_500_tokens(sdk, standin):
    served, completion = _ask(sdk, SHORT)

    assert served == f"{CHEAP['name']}:{CHEAP['version']}"
    assert completion.choices[0].message.content == f"Echo: {SHORT}"
    (call,) = standin.calls(CHEAP_MODEL)
    assert call["body"]["max_tokens"] == 500
    assert call["headers"]["Authorization"] == f"Bearer {OPENAI_KEY}"
    row = _last_row()
    assert row.routing_rule == "short-prompts-to-cheap"
    assert row.input_price_per_1k == Decimal("0.00015")


def test_complex_prompts_take_the_strong_model(sdk, standin):
    served, _ = _ask(sdk, COMPLEX)

    assert served == f"{STRONG['name']}:{STRONG['version']}"
    assert len(standin.calls(STRONG_MODEL)) == 1 and not standin.calls(CHEAP_MODEL)
    assert _last_row().routing_rule == "complex-prompts-to-strong"


def test_other_long_prompts_take_the_cheap_model(sdk, standin):
    served, _ = _ask(sdk, LONG)

    assert served.startswith(f"{CHEAP['name']}:")
    assert _last_row().routing_rule == "everything-else-to-cheap"


def test_a_caller_max_tokens_is_kept(sdk, standin):
    sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": SHORT}], max_tokens=7)

    assert standin.calls(CHEAP_MODEL)[0]["body"]["max_tokens"] == 7


def test_a_failing_strong_model_is_retried_three_times_then_the_cheap_one_answers(sdk, standin):
    standin.script(STRONG_MODEL, [{"status": 500}] * 3)

    served, completion = _ask(sdk, COMPLEX)

    assert served.startswith(f"{CHEAP['name']}:")
    assert completion.choices[0].message.content.startswith("Echo: Compare")
    assert len(standin.calls(STRONG_MODEL)) == 3
    row = _last_row()
    assert row.fallback_used and row.attempts == 4
    assert [step.split(": ")[0] for step in row.route] == ["gpt-4o:2024-08-06", "gpt-4o-mini:2024-07-18"]


def test_when_both_openai_models_fail_the_local_model_answers(sdk, standin):
    standin.script(STRONG_MODEL, [{"status": 503}] * 3)
    standin.script(CHEAP_MODEL, [{"status": 503}] * 3)

    served, _ = _ask(sdk, COMPLEX)

    assert served.startswith("smollm2:")
    assert len(standin.calls(LOCAL_MODEL)) == 1
    assert [step.split(": ")[1] for step in _last_row().route][-1] == "ok"


def test_the_flag_registers_it_without_the_key_and_a_rerun_keeps_operator_edits(standin, settings, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings.OPENAI_BASE_URL = standin.url
    call_command("bootstrap", verbosity=0)
    assert not Provider.objects.filter(name="openai").exists()

    call_command("bootstrap", "--openai", verbosity=0)
    RoutingRule.objects.filter(name="short-prompts-to-cheap").update(max_prompt_chars=49)
    call_command("bootstrap", "--openai", verbosity=0)

    assert ModelVersion.objects.filter(name__in=[CHEAP["name"], STRONG["name"]]).count() == 2
    assert RoutingRule.objects.get(name="short-prompts-to-cheap").max_prompt_chars == 49
    assert RoutingRule.objects.filter(model_name="auto").count() == 3
