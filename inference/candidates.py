"""Which versions may serve a request, in the order to try them."""

from gateway.caching import snapshot
from inference import registry
from inference.models import FallbackStep, ModelVersion, RoutingRule, Status


def candidates(
    model_ref: str,
    *,
    task: str,
    prompt: str = "",
    max_tokens: int | None = None,
    primary: ModelVersion | None = None,
) -> tuple[list[ModelVersion], RoutingRule | None]:
    """The version to try first (given, e.g. an experiment's variant; pinned; chosen by a
    routing rule; or production), then its fallbacks."""
    name = model_ref.partition(":")[0]
    rule = None
    if primary is None and ":" in model_ref:
        primary = registry.resolve(model_ref, task=task)
    elif primary is None:
        rule = next((r for r in _rules(name) if r.matches(prompt, max_tokens)), None)
        primary = rule.target if rule else registry.resolve(name, task=task)
    ordered = ([primary] if primary else []) + _fallbacks(name, task)
    return list(dict.fromkeys(ordered)), rule


def _rules(name: str) -> list[RoutingRule]:
    return snapshot.read(
        ("routing_rules", name),
        lambda: list(RoutingRule.objects.filter(model_name=name, enabled=True).select_related("target__provider")),
    )


def _fallbacks(name: str, task: str) -> list[ModelVersion]:
    def load():
        steps = (
            FallbackStep.objects.filter(chain__model_name=name, version__task=task)
            .exclude(version__status=Status.ARCHIVED)
            .select_related("version__provider")
        )
        return [step.version for step in steps]

    return snapshot.read(("fallbacks", name, task), load)
