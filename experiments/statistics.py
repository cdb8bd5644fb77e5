"""Per-variant results of an experiment, computed by the database (aggregates, never row by row).

Definitions (the README's experiment section repeats them):
- requests: rows logged for the variant; a shadow variant's rows are its shadow answers.
- error: an answer with status >= 500 (the model or gateway failed; 4xx are the caller's).
- feedback: a request with feedback; a shadow answer counts a labelled feedback on the request
  it mirrored (a score rated an answer the shadow did not give, so it does not count there).
- positive outcome: the answer's label equals the feedback's true label, or, for feedback with
  a score and no label, a score of at least 0.5.
"""

import math
from dataclasses import dataclass, field

from django.db.models import Avg, Count, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from experiments import significance
from experiments.models import Experiment, Feedback, Variant
from gateway.models import RequestLog

SRM_P_VALUE = 0.001  # below this the split is flagged as broken
POSITIVE_SCORE = 0.5


@dataclass
class Comparison:
    """A variant minus control, with the test's p-value."""

    difference: float
    p_value: float | None


@dataclass
class VariantStats:
    name: str
    version: str
    mode: str
    weight: int
    is_control: bool
    requests: int = 0
    units: int = 0
    errors: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    cost_per_request: float | None = None
    feedback: int = 0
    positives: int = 0
    scores: int = 0
    score_mean: float | None = None
    score_variance: float | None = None
    vs_control: dict[str, Comparison] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def error_ci(self):
        return significance.wilson_interval(self.errors, self.requests)

    @property
    def feedback_rate(self) -> float | None:
        return self.feedback / self.requests if self.requests else None

    @property
    def feedback_ci(self):
        return significance.wilson_interval(self.feedback, self.requests)

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.feedback if self.feedback else None

    @property
    def positive_ci(self):
        return significance.wilson_interval(self.positives, self.feedback)

    @property
    def score_ci(self):
        if self.score_mean is None or self.score_variance is None:
            return None
        return significance.mean_interval(self.score_mean, self.score_variance, self.scores)


@dataclass
class ExperimentStats:
    variants: list[VariantStats]
    srm_p_value: float | None

    @property
    def srm_flagged(self) -> bool:
        return self.srm_p_value is not None and self.srm_p_value < SRM_P_VALUE

    @property
    def control(self) -> VariantStats | None:
        return next((v for v in self.variants if v.is_control), None)


def experiment_rows(experiment: Experiment):
    """The experiment's log rows, each with the feedback given on it (or on the request it mirrored)."""
    feedback = Feedback.objects.filter(request_uuid=OuterRef("answered_request"))
    return (
        RequestLog.objects.filter(experiment=experiment)
        .order_by()
        .annotate(
            answered_request=Coalesce("shadow_of", "request_id"),
            feedback_label=Subquery(feedback.values("label")[:1]),
            feedback_score=Subquery(feedback.values("score")[:1]),
        )
    )


def error_counts(experiment: Experiment) -> dict[str, tuple[int, int]]:
    """variant name -> (requests, errors); what the guardrail reads."""
    rows = RequestLog.objects.filter(experiment=experiment).order_by().values("variant")
    return {
        row["variant"]: (row["requests"], row["errors"])
        for row in rows.annotate(requests=Count("id"), errors=Count("id", filter=Q(status_code__gte=500)))
    }


def for_experiment(experiment: Experiment) -> ExperimentStats:
    variants = {
        v.name: VariantStats(
            name=v.name, version=str(v.model_version), mode=v.mode, weight=v.weight, is_control=v.is_control
        )
        for v in Variant.objects.filter(experiment=experiment).select_related("model_version")
    }
    live = Q(shadow_of__isnull=True)
    labelled = Q(feedback_label__isnull=False) & ~Q(feedback_label="")
    scored_only = Q(feedback_label="") & Q(feedback_score__isnull=False) & live
    rows = experiment_rows(experiment)
    for row in rows.values("variant").annotate(
        requests=Count("id"),
        units=Count("unit", distinct=True),
        errors=Count("id", filter=Q(status_code__gte=500)),
        cost=Avg("cost_usd"),
        feedback=Count("id", filter=labelled | scored_only),
        positives=Count(
            "id",
            filter=(labelled & Q(feedback_label=F("output_label")))
            | (scored_only & Q(feedback_score__gte=POSITIVE_SCORE)),
        ),
        scores=Count("feedback_score", filter=live),
        score_sum=Sum("feedback_score", filter=live),
        # Sums of squares rather than VAR_SAMP, which SQLite (the embedded default) lacks for n < 2.
        score_squares=Sum(F("feedback_score") * F("feedback_score"), filter=live),
    ):
        stats = variants.get(row["variant"])
        if stats is None:
            continue  # a variant since removed from the experiment
        stats.requests, stats.units, stats.errors = row["requests"], row["units"], row["errors"]
        stats.cost_per_request = float(row["cost"]) if row["cost"] is not None else None
        stats.feedback, stats.positives, stats.scores = row["feedback"], row["positives"], row["scores"]
        if stats.scores:
            stats.score_mean = row["score_sum"] / stats.scores
        if stats.scores >= 2:
            squares = row["score_squares"] - row["score_sum"] ** 2 / stats.scores
            stats.score_variance = max(0.0, squares) / (stats.scores - 1)
        latencies = RequestLog.objects.filter(experiment=experiment, variant=stats.name)
        stats.latency_p50_ms = _percentile(latencies, 0.50, stats.requests)
        stats.latency_p95_ms = _percentile(latencies, 0.95, stats.requests)
    result = ExperimentStats(variants=list(variants.values()), srm_p_value=_srm(variants.values()))
    _compare(result)
    return result


def _percentile(rows, fraction: float, n: int) -> float | None:
    """Linear interpolation between the two nearest ranks (PostgreSQL's percentile_cont), read with
    ORDER BY ... OFFSET so it runs on any database without fetching the rows."""
    if n == 0:
        return None
    position = fraction * (n - 1)
    low = math.floor(position)
    values = list(rows.order_by("latency_ms").values_list("latency_ms", flat=True)[low : low + 2])
    if len(values) == 1:
        return values[0]
    return values[0] + (values[1] - values[0]) * (position - low)


def _srm(variants) -> float | None:
    """Sample ratio mismatch: do live variants' unit counts match their weights?"""
    live = [v for v in variants if v.mode == "live" and v.weight > 0]
    return significance.sample_ratio_p_value([v.units for v in live], [v.weight for v in live])


def _compare(result: ExperimentStats) -> None:
    control = result.control
    if control is None:
        return
    for v in result.variants:
        if v is control:
            continue
        if v.error_rate is not None and control.error_rate is not None:
            v.vs_control["error_rate"] = Comparison(
                v.error_rate - control.error_rate,
                significance.two_proportion_z_test(v.errors, v.requests, control.errors, control.requests),
            )
        if v.positive_rate is not None and control.positive_rate is not None:
            v.vs_control["positive_rate"] = Comparison(
                v.positive_rate - control.positive_rate,
                significance.two_proportion_z_test(v.positives, v.feedback, control.positives, control.feedback),
            )
        if v.score_mean is not None and control.score_mean is not None:
            v.vs_control["score"] = Comparison(
                v.score_mean - control.score_mean,
                significance.welch_t_test(
                    v.score_mean,
                    v.score_variance or 0.0,
                    v.scores,
                    control.score_mean,
                    control.score_variance or 0.0,
                    control.scores,
                ),
            )
