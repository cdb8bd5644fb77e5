"""The plan step of the pipeline: which versions may answer a request, in the order to try them."""

from dataclasses import dataclass

from experiments import traffic_split
from experiments.models import Variant
from gateway.api.errors import DraftNotAllowed, ModelNotAllowed, ModelNotFound
from gateway.caching import snapshot
from gateway.record.context import RequestContext
from inference import registry
from inference.models import FallbackStep, ModelVersion, RoutingRule, Status


@dataclass(frozen=True)
class Plan:
    versions: list[ModelVersion]  # the first serves; the rest are its fallbacks, in order
    shadows: tuple[Variant, ...]  # variants that also answer a mirrored copy, off the request path

    @property
    def primary(self) -> ModelVersion:
        return self.versions[0]


def plan(
    ctx: RequestContext,
    *,
    task: str,
    model_ref: str,
    prompt: str = "",
    max_tokens: int | None = None,
    user_id: str | None = None,
) -> Plan:
    """Check the key may use the model, then choose: a pinned `name:version` (production or
    staging only, unless the key may pin drafts); else a running experiment's variant for this
    unit (X-User-ID, else the key); else the first routing rule that matches; else production.
    Fallbacks follow an upstream primary."""
    name, _, pinned = model_ref.partition(":")
    ctx.requested_model = model_ref
    key = ctx.api_key
    assert key is not None  # plans are made for keyed calls only
    if not key.allows_model(name):
        raise ModelNotAllowed(name)
    assigned = None
    if not pinned:
        unit = traffic_split.unit_of(user_id=user_id, key_prefix=ctx.key_prefix)
        assigned = traffic_split.assign(model_name=name, task=task, unit=unit, request_id=ctx.request_id)
    if assigned is not None:
        ctx.experiment, ctx.variant, ctx.unit = assigned.experiment, assigned.variant.name, assigned.unit
    versions, rule = _candidates(
        model_ref,
        task=task,
        prompt=prompt,
        max_tokens=max_tokens,
        primary=assigned.variant.model_version if assigned else None,
    )
    if not versions:
        raise ModelNotFound(task, model_ref)
    if pinned and not key.may_pin(versions[0]):
        raise DraftNotAllowed(versions[0])
    if rule:
        ctx.routing_rule = rule.name
    ctx.set_version(versions[0])
    # Shadow copies run on local models only: a paid upstream is never called for an answer nobody reads.
    shadows = tuple(v for v in assigned.shadows if v.model_version.is_local) if assigned else ()
    return Plan(versions, shadows)


def _candidates(
    model_ref: str,
    *,
    task: str,
    prompt: str = "",
    max_tokens: int | None = None,
    primary: ModelVersion | None = None,
) -> tuple[list[ModelVersion], RoutingRule | None]:
    """The version to try first (given, e.g. an experiment's variant; pinned; chosen by a
    routing rule; or production), then its fallbacks. A local version has none: its
    micro-batcher answers or refuses with 503 at once."""
    name = model_ref.partition(":")[0]
    rule = None
    if primary is None and ":" in model_ref:
        primary = registry.resolve(model_ref, task=task)
    elif primary is None:
        rule = next((r for r in _rules(name) if r.target.task == task and r.matches(prompt, max_tokens)), None)
        primary = rule.target if rule else registry.resolve(name, task=task)
    if primary is not None and primary.is_local:
        return [primary], rule
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
