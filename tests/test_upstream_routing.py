import subprocess
import sys

import pytest

from gateway.models import RequestLog
from inference.breaker import Breaker
from inference.models import RoutingRule
from tests.factories import APIKeyFactory, ChatVersionFactory
from tests.servers import ROOT


def _ask(client, text="hello", model="gpt", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return client.post("/v1/chat/completions", body, format="json")


@pytest.fixture
def fragile(settings):
    settings.BREAKER_FAILURE_THRESHOLD = 2
    settings.BREAKER_COOLDOWN_S = 60


def test_breaker_opens_after_repeated_failures_and_skips_the_upstream(authed, gpt, backup, standin, fragile):
    gpt.provider.max_retries = 0
    gpt.provider.save()
    standin.script("upstream-a", [{"status": 500}] * 2)
    _ask(authed)
    _ask(authed)
    calls_before = len(standin.calls("upstream-a"))

    response = _ask(authed)

    assert response.status_code == 200
    assert len(standin.calls("upstream-a")) == calls_before  # not even tried
    assert Breaker(gpt.pk).state() == "open"
    assert RequestLog.objects.order_by("created_at").last().route[0] == "gpt:a: skipped, circuit open"


def test_all_breakers_open_is_a_503(authed, gpt, fragile):
    breaker = Breaker(gpt.pk)
    breaker.record_failure()
    breaker.record_failure()

    response = _ask(authed)

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "upstream_unavailable"


def test_after_cooldown_one_probe_passes_and_success_closes(authed, gpt, standin, settings, fragile):
    breaker = Breaker(gpt.pk)
    breaker.record_failure()
    breaker.record_failure()
    settings.BREAKER_COOLDOWN_S = 0  # the cooldown is over

    assert breaker.state() == "half-open"
    assert _ask(authed).status_code == 200  # the probe
    assert breaker.state() == "closed"


def test_failed_probe_reopens(gpt, settings, fragile):
    breaker = Breaker(gpt.pk)
    breaker.record_failure()
    breaker.record_failure()
    settings.BREAKER_COOLDOWN_S = 0
    assert breaker.allow() is True
    assert breaker.allow() is False  # one probe at a time

    settings.BREAKER_COOLDOWN_S = 60
    breaker.record_failure()

    assert breaker.state() == "open"


def test_breaker_state_is_shared_with_other_processes(gpt, fragile):
    breaker = Breaker(gpt.pk)
    breaker.record_failure()
    breaker.record_failure()

    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from inference.breaker import Breaker; print(Breaker({gpt.pk}).state())",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )

    assert other.stdout.strip() == "open", other.stderr


@pytest.fixture
def routed(provider):
    small = ChatVersionFactory(name="small", version="1", provider=provider)
    large = ChatVersionFactory(name="large", version="1", provider=provider)
    coder = ChatVersionFactory(name="coder", version="1", provider=provider)
    RoutingRule.objects.create(model_name="auto", name="code-to-coder", priority=10, keywords=["python"], target=coder)
    RoutingRule.objects.create(model_name="auto", name="long-to-large", priority=20, min_prompt_chars=200, target=large)
    RoutingRule.objects.create(model_name="auto", name="big-answers", priority=30, min_max_tokens=1000, target=large)
    RoutingRule.objects.create(model_name="auto", name="default-small", priority=99, target=small)
    return {"small": small, "large": large, "coder": coder}


@pytest.mark.parametrize(
    ("text", "extra", "target", "rule"),
    [
        ("hi there", {}, "small", "default-small"),
        ("word " * 60, {}, "large", "long-to-large"),
        ("write Python for me", {}, "coder", "code-to-coder"),
        ("hi", {"max_tokens": 2000}, "large", "big-answers"),
    ],
    ids=["short", "long", "keyword", "max-tokens"],
)
def test_auto_routes_by_rules_and_logs_the_choice(authed, routed, standin, text, extra, target, rule):
    response = _ask(authed, text, model="auto", **extra)

    assert response.status_code == 200
    row = RequestLog.objects.get()
    assert row.model_version == routed[target]
    assert row.routing_rule == rule
    assert (row.model_name, row.requested_model) == (routed[target].name, "auto")


def test_models_lists_what_the_key_may_call(client, routed, default_models):
    key = APIKeyFactory(allowed_models=["auto", "sentiment"])
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")

    response = client.get("/v1/models")

    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["auto", "sentiment"]
    assert response.json()["object"] == "list"
