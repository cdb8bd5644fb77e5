"""Pause an experiment whose variant fails significantly more often than control."""

import threading
import time

from django.conf import settings

from experiments import background, significance, statistics
from experiments.models import Experiment, ExperimentStatus

# experiment pk -> when this process last scheduled its check (time.monotonic()).
_last_scheduled: dict[int, float] = {}
_lock = threading.Lock()


def schedule_check(experiment: Experiment) -> None:
    """Called on the request path: at most one check per interval per process, run in the background."""
    if not experiment.guardrail_enabled:
        return
    now = time.monotonic()
    with _lock:
        last = _last_scheduled.get(experiment.pk)
        if last is not None and now - last < settings.EXPERIMENT_GUARDRAIL_INTERVAL_S:
            return
        _last_scheduled[experiment.pk] = now
    if not background.submit(check, experiment.pk):
        with _lock:  # the backlog was full: let the next request try again
            _last_scheduled.pop(experiment.pk, None)


def failing_variant(experiment: Experiment) -> str | None:
    """Why the experiment should stop serving its variants now, or None."""
    variants = list(experiment.variants.filter(mode="live"))
    control = next((v for v in variants if v.is_control), None)
    counts = statistics.error_counts(experiment)
    if control is None or counts.get(control.name, (0, 0))[0] < experiment.guardrail_min_requests:
        return None
    control_requests, control_errors = counts[control.name]
    for variant in variants:
        requests, errors = counts.get(variant.name, (0, 0))
        if variant is control or requests < experiment.guardrail_min_requests:
            continue
        p_value = significance.two_proportion_z_test(
            errors, requests, control_errors, control_requests, alternative="greater"
        )
        if p_value is not None and p_value < experiment.guardrail_p_value:
            return (
                f"Variant {variant.name} failed {errors}/{requests} requests ({errors / requests:.1%}) against "
                f"control's {control_errors}/{control_requests} ({control_errors / control_requests:.1%}); "
                f"one-sided p = {p_value:.2g} < {experiment.guardrail_p_value:g}."
            )
    return None


def check(experiment_id: int) -> str | None:
    """Pause the experiment if a variant is failing; the reason, or None if it was left running."""
    from experiments.services import experiment_pause  # services use statistics too; import at use

    experiment = Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.RUNNING).first()
    if experiment is None or not experiment.guardrail_enabled:
        return None
    reason = failing_variant(experiment)
    if reason is not None:
        experiment_pause(experiment, actor="guardrail", reason=reason, by_guardrail=True)
    return reason
