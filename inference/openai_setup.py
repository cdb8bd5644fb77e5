"""The original service's cost-optimized LLM set-up as shipped behaviour, registered in one step:
`manage.py bootstrap --openai`, and every `bootstrap` while OPENAI_API_KEY is set.

- The `openai` provider at OPENAI_BASE_URL, its key read from OPENAI_API_KEY; three attempts
  per version with exponential backoff (the original's `stop_after_attempt(3)`).
- A cheap and a strong chat version at OpenAI's list prices, each capping answers at 500
  tokens when the request sets no max_tokens (the original's `max_tokens=500`).
- Routing for the model name `auto`, as the original's `select_model`: prompts under 100
  characters go to the cheap version; prompts with "analyze", "explain in detail", "compare"
  or "evaluate" to the strong one; the rest to the cheap one.
- Fallbacks: strong → cheap → the local chat model (GATEWAY_DEFAULT_CHAT), where it is served.

Rows that exist are left as the operator has them: a restart never undoes an edit.
"""

from decimal import Decimal

from django.conf import settings
from django.db import transaction

from inference.models import Backend, FallbackChain, FallbackStep, ModelVersion, Provider, RoutingRule, Status, Task
from inference.services import model_version_promote, model_version_register

PROVIDER = "openai"
ROUTED_NAME = "auto"
ANSWER_CAP_TOKENS = 500
SHORT_PROMPT_CHARS = 100
COMPLEX_INDICATORS = ["analyze", "explain in detail", "compare", "evaluate"]

# OpenAI's list prices (USD per 1k tokens) for the pinned snapshots; edit them in the admin
# when OpenAI's change.
CHEAP = {
    "name": "gpt-4o-mini",
    "version": "2024-07-18",
    "upstream_model": "gpt-4o-mini-2024-07-18",
    "input_cost_per_1k": Decimal("0.00015"),
    "output_cost_per_1k": Decimal("0.0006"),
    "notes": "The cheap model of the cost-optimized set-up (the original's gpt-3.5-turbo).",
}
STRONG = {
    "name": "gpt-4o",
    "version": "2024-08-06",
    "upstream_model": "gpt-4o-2024-08-06",
    "input_cost_per_1k": Decimal("0.0025"),
    "output_cost_per_1k": Decimal("0.01"),
    "notes": "The strong model of the cost-optimized set-up (the original's gpt-4).",
}


def openai_setup_register(*, actor: str) -> list[str]:
    """Register what is missing of the set-up; returns what was done, one line each."""
    done = []
    provider, created = Provider.objects.get_or_create(
        name=PROVIDER,
        defaults={"base_url": settings.OPENAI_BASE_URL, "api_key_env": "OPENAI_API_KEY", "max_retries": 2},
    )
    if created:
        done.append(f"Registered the {PROVIDER} provider at {provider.base_url}.")
    cheap = _version(provider, CHEAP, actor, done)
    strong = _version(provider, STRONG, actor, done)
    local = ModelVersion.objects.filter(name=settings.GATEWAY_DEFAULT_CHAT, status=Status.PRODUCTION).first()
    with transaction.atomic():
        if not RoutingRule.objects.filter(model_name=ROUTED_NAME).exists():
            _route_auto(cheap, strong)
            done.append(f"Routed {ROUTED_NAME}: short prompts to {cheap}, complex ones to {strong}, others to {cheap}.")
        for name, chain in (
            (ROUTED_NAME, [cheap, local]),  # after the rule's choice; a choice already tried is skipped
            (strong.name, [cheap, local]),
            (cheap.name, [local]),
        ):
            steps = [version for version in chain if version is not None]
            if _chain(name, steps):
                done.append(f"Fallbacks for {name}: {' → '.join(str(version) for version in steps)}.")
    return done


def _version(provider: Provider, spec: dict, actor: str, done: list[str]) -> ModelVersion:
    version = ModelVersion.objects.filter(name=spec["name"], version=spec["version"]).first()
    if version is None:
        version = model_version_register(
            version=ModelVersion(
                **spec,
                task=Task.CHAT,
                backend=Backend.OPENAI,
                provider=provider,
                default_max_tokens=ANSWER_CAP_TOKENS,
            ),
            actor=actor,
            message=f"Registered {spec['name']}:{spec['version']} for the cost-optimized set-up.",
        )
        done.append(f"Registered {version}.")
    if not ModelVersion.objects.filter(name=version.name, status=Status.PRODUCTION).exists():
        model_version_promote(version=version, actor=actor, reason="the default of a name without one")
        done.append(f"Promoted {version} to production.")
    return version


def _route_auto(cheap: ModelVersion, strong: ModelVersion) -> None:
    rules = [
        {"name": "short-prompts-to-cheap", "max_prompt_chars": SHORT_PROMPT_CHARS - 1, "target": cheap},
        {"name": "complex-prompts-to-strong", "keywords": COMPLEX_INDICATORS, "target": strong},
        {"name": "everything-else-to-cheap", "target": cheap},
    ]
    for priority, rule in enumerate(rules, start=1):
        RoutingRule.objects.create(model_name=ROUTED_NAME, priority=priority * 10, **rule)


def _chain(name: str, versions: list[ModelVersion]) -> bool:
    """Create the name's chain unless it has one; True if created."""
    if not versions or FallbackChain.objects.filter(model_name=name).exists():
        return False
    chain = FallbackChain.objects.create(model_name=name)
    for position, version in enumerate(versions, start=1):
        FallbackStep.objects.create(chain=chain, position=position, version=version)
    return True
