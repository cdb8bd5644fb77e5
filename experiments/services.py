"""An experiment's life cycle: validate, start, pause, stop, promote the winner. Each change is audited."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments import statistics
from experiments.models import Experiment, ExperimentStatus, Variant
from gateway.caching import snapshot
from gateway.models import AuditAction
from gateway.record import audit
from inference.models import ModelVersion, Status
from inference.services import model_version_promote

# Significance a variant needs to be called the winner (two-sided, positive-outcome rate).
WINNER_P_VALUE = 0.05


class ExperimentError(Exception):
    """The change is not allowed now; the message says why."""


@dataclass(frozen=True)
class VariantSpec:
    """What validation needs of a variant, saved or still a form."""

    name: str
    model_version: ModelVersion
    mode: str
    weight: int
    is_control: bool


def variant_problems(model_name: str, variants: list[VariantSpec]) -> list[str]:
    """Everything wrong with a set of variants, in words an operator can act on."""
    problems = []
    live = [v for v in variants if v.mode == "live"]
    total = sum(v.weight for v in live)
    if total != 100:
        problems.append(f"The live variants' weights must sum to 100; they sum to {total}.")
    controls = [v for v in variants if v.is_control]
    if len(controls) != 1:
        problems.append(f"Mark exactly one variant as control; {len(controls)} are marked.")
    elif controls[0].mode != "live":
        problems.append("The control must be a live variant.")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        problems.append("Variant names must differ.")
    for v in variants:
        if v.model_version.name != model_name:
            problems.append(f"Variant {v.name}: {v.model_version} is not a version of {model_name}.")
        if v.model_version.status == Status.ARCHIVED:
            problems.append(f"Variant {v.name}: {v.model_version} is archived.")
    if len({v.model_version.task for v in variants}) > 1:
        problems.append("All variants must serve the same task.")
    return problems


def _specs(experiment: Experiment) -> list[VariantSpec]:
    return [
        VariantSpec(v.name, v.model_version, v.mode, v.weight, v.is_control)
        for v in experiment.variants.select_related("model_version")
    ]


def _audit_each_version(experiment: Experiment, *, actor: str, action: str, message: str) -> None:
    """One event per variant, so each version's history shows the experiments it took part in."""
    for variant in experiment.variants.select_related("model_version"):
        audit.record(
            actor=actor,
            action=action,
            experiment=experiment,
            model_version=variant.model_version,
            message=f"{message} (variant {variant.name}, {variant.mode}, weight {variant.weight}).",
        )


def experiment_start(experiment: Experiment, *, actor: str) -> None:
    """Start a draft, or resume a paused experiment."""
    if experiment.status not in (ExperimentStatus.DRAFT, ExperimentStatus.PAUSED):
        raise ExperimentError(f"{experiment} is {experiment.status}; only a draft or paused experiment starts.")
    specs = _specs(experiment)
    problems = (["An experiment needs at least two variants."] if len(specs) < 2 else []) + variant_problems(
        experiment.model_name, specs
    )
    if problems:
        raise ExperimentError(" ".join(problems))
    resumed = experiment.status == ExperimentStatus.PAUSED
    try:
        with transaction.atomic():
            updated = Experiment.objects.filter(pk=experiment.pk, status=experiment.status).update(
                status=ExperimentStatus.RUNNING, started_at=experiment.started_at or timezone.now(), paused_reason=""
            )
    except IntegrityError:
        raise ExperimentError(f"Another experiment on {experiment.model_name} is running; stop it first.") from None
    if not updated:
        raise ExperimentError(f"{experiment} changed meanwhile; reload and try again.")
    snapshot.changed()  # a queryset update sends no post_save
    experiment.refresh_from_db()
    _audit_each_version(
        experiment,
        actor=actor,
        action=AuditAction.START,
        message=f"Experiment {experiment} {'resumed' if resumed else 'started'} at coverage {experiment.coverage}%",
    )


def experiment_pause(experiment: Experiment, *, actor: str, reason: str = "", by_guardrail: bool = False) -> bool:
    """Send the model's traffic back to production; False if it was not running (e.g. paused meanwhile)."""
    # Conditional update: when several processes' guardrails fire at once, one pauses and audits.
    updated = Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING).update(
        status=ExperimentStatus.PAUSED, paused_reason=reason
    )
    if updated:
        snapshot.changed()
        experiment.refresh_from_db()
        _audit_each_version(
            experiment,
            actor=actor,
            action=AuditAction.GUARDRAIL if by_guardrail else AuditAction.PAUSE,
            message=f"Experiment {experiment} paused" + (f": {reason}" if reason else ""),
        )
    return bool(updated)


def experiment_stop(experiment: Experiment, *, actor: str, note: str = "") -> bool:
    """End the experiment for good; its statistics stay."""
    updated = Experiment.objects.filter(
        pk=experiment.pk, status__in=[ExperimentStatus.DRAFT, ExperimentStatus.RUNNING, ExperimentStatus.PAUSED]
    ).update(status=ExperimentStatus.STOPPED, stopped_at=timezone.now())
    if updated:
        snapshot.changed()
        experiment.refresh_from_db()
        _audit_each_version(
            experiment, actor=actor, action=AuditAction.STOP, message=f"Experiment {experiment} stopped{note}"
        )
    return bool(updated)


def winner(stats: statistics.ExperimentStats) -> statistics.VariantStats | None:
    """The live variant with the best positive-outcome rate among those significantly better than
    control and not significantly worse in errors; None when no variant beats control."""
    candidates = []
    for v in stats.variants:
        if v.is_control or v.mode != "live":
            continue
        positive, errors = v.vs_control.get("positive_rate"), v.vs_control.get("error_rate")
        better = positive is not None and positive.difference > 0 and (positive.p_value or 1) < WINNER_P_VALUE
        worse = errors is not None and errors.difference > 0 and (errors.p_value or 1) < WINNER_P_VALUE
        if better and not worse:
            candidates.append(v)
    # Every candidate has a positive rate: it beat control on it.
    return max(candidates, key=lambda v: v.positive_rate, default=None)  # type: ignore[arg-type,return-value]


def experiment_promote_winner(experiment: Experiment, *, actor: str) -> Variant:
    """Promote the winning variant's version to production and stop the experiment."""
    if experiment.status == ExperimentStatus.STOPPED:
        raise ExperimentError(f"{experiment} is stopped already.")
    best = winner(statistics.for_experiment(experiment))
    if best is None:
        raise ExperimentError(
            f"No variant of {experiment} beats control on positive outcomes at p < {WINNER_P_VALUE}; "
            "nothing was promoted. Keep it running for more feedback, or stop it."
        )
    variant = experiment.variants.select_related("model_version").get(name=best.name)
    model_version_promote(
        version=variant.model_version,
        actor=actor,
        experiment=experiment,
        reason=f"the winner of {experiment}: positive outcomes {best.positive_rate:.1%} vs control, "
        f"p = {best.vs_control['positive_rate'].p_value:.2g}",
    )
    experiment_stop(experiment, actor=actor, note=f"; {variant.model_version} promoted")
    return variant


def experiment_record_changes(experiment: Experiment, *, actor: str, changes: list[str]) -> None:
    """Audit an edit of weights, coverage or variants (the admin computes the before/after)."""
    if changes:
        _audit_each_version(
            experiment,
            actor=actor,
            action=AuditAction.WEIGHTS,
            message=f"Experiment {experiment} ({experiment.status}) changed: {'; '.join(changes)}",
        )
