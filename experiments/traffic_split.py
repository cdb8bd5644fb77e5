"""Which variant of a running experiment answers a request (inference.planning.plan asks)."""

from dataclasses import dataclass

from experiments import assignment, guardrails
from experiments.models import Experiment, ExperimentStatus, Variant
from gateway.caching import snapshot
from inference.models import Status


@dataclass(frozen=True)
class Assignment:
    experiment: Experiment
    variant: Variant
    unit: str  # digest of the unit, for the log
    shadows: tuple[Variant, ...]  # variants that also get a mirrored copy of this request


def unit_of(*, user_id: str | None, key_prefix: str) -> str:
    """The experiment unit: the caller's X-User-ID when sent, else its API key."""
    return f"user:{user_id}" if user_id else f"key:{key_prefix}"


def assign(*, model_name: str, task: str, unit: str, request_id) -> Assignment | None:
    """The variant for this unit if a running experiment covers it; None means production."""
    variants = snapshot.read(("running_variants", model_name, task), lambda: _running_variants(model_name, task))
    if not variants:
        return None
    experiment = variants[0].experiment
    guardrails.schedule_check(experiment)
    if not assignment.in_coverage(experiment.salt, unit, experiment.coverage):
        return None
    live = [v for v in variants if not v.is_shadow]
    name = assignment.pick([(v.name, v.weight) for v in live], assignment.bucket_for(experiment.salt, unit))
    chosen = next(v for v in live if v.name == name)
    if chosen.model_version.status == Status.ARCHIVED:
        return None  # an archived version is never served; production answers instead
    # Shadow copies sample requests, not units: a share of this experiment's requests.
    request_bucket = assignment.bucket_for(f"{experiment.salt}\x00shadow", str(request_id))
    shadows = tuple(
        v
        for v in variants
        if v.is_shadow
        and request_bucket < v.weight * assignment.BUCKETS // 100
        and v.model_version.status != Status.ARCHIVED
    )
    return Assignment(experiment, chosen, assignment.unit_digest(unit), shadows)


def _running_variants(model_name: str, task: str) -> list[Variant]:
    return list(
        Variant.objects.filter(
            experiment__model_name=model_name,
            experiment__status=ExperimentStatus.RUNNING,
            model_version__task=task,
        ).select_related("experiment", "model_version__provider")
    )
