"""Statistics against values worked out by hand on a small, fully known dataset."""

import math
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from scipy import stats as scipy_stats

from experiments import statistics
from experiments.models import Feedback
from gateway.models import RequestLog
from tests.factories import ExperimentFactory, ModelVersionFactory, RequestLogFactory, VariantFactory

pytestmark = pytest.mark.django_db

Z = 1.959963984540054  # the 97.5% point of the standard normal


def wilson(k, n):
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def _row(experiment, variant, unit, *, latency, cost, status=200, label="", shadow_of=None):
    return RequestLogFactory(
        experiment=experiment,
        variant=variant,
        unit=unit,
        latency_ms=latency,
        cost_usd=Decimal(cost),
        status_code=status,
        output_label=label,
        shadow_of=shadow_of,
    )


def _feedback(row, label="", score=None):
    Feedback.objects.create(request=row, request_uuid=row.request_id, label=label, score=score)


@pytest.fixture
def known():
    """control: 10 requests from 4 units, 1 error, latencies 1..10 ms, costs 0.0001 x i, all answered
    POSITIVE; labels on 6 (4 agree), scores 1.0/0.5/0.0 on three of those and 0.9 alone on a 7th.
    treatment: 20 requests from 10 units, 2 errors, latencies 2..40 ms, answered NEGATIVE; labels on
    10 (9 agree); scores 1, 1, 1, 0.5, 0 on the first five.
    shadow: mirrored the first 3 control requests, answering POSITIVE, NEGATIVE, POSITIVE."""
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="control", weight=50, is_control=True)
    VariantFactory(experiment=experiment, name="treatment", weight=50, model_version=ModelVersionFactory())
    VariantFactory(experiment=experiment, name="shadow", weight=100, mode="shadow")
    control = [
        _row(experiment, "control", f"u{(i - 1) // 3}", latency=i, cost=f"{0.0001 * i:.4f}", label="POSITIVE")
        for i in range(1, 10)
    ] + [_row(experiment, "control", "u3", latency=10, cost="0.0010", status=500)]
    for row, label, score in zip(
        control[:6], ["POSITIVE"] * 4 + ["NEGATIVE"] * 2, [1.0, 0.5, 0.0, None, None, None], strict=True
    ):
        _feedback(row, label, score)
    _feedback(control[6], score=0.9)
    treatment = [
        _row(experiment, "treatment", f"t{i // 2}", latency=2 * i, cost="0.0002", label="NEGATIVE")
        for i in range(1, 19)
    ] + [_row(experiment, "treatment", "t9", latency=2 * i, cost="0.0002", status=500) for i in (19, 20)]
    for row, label, score in zip(
        treatment[:10], ["NEGATIVE"] * 9 + ["POSITIVE"], [1.0, 1.0, 1.0, 0.5, 0.0] + [None] * 5, strict=True
    ):
        _feedback(row, label, score)
    for parent, label in zip(control[:3], ["POSITIVE", "NEGATIVE", "POSITIVE"], strict=True):
        _row(experiment, "shadow", parent.unit, latency=3, cost="0", label=label, shadow_of=parent.request_id)
    return experiment


def _by_name(result):
    return {v.name: v for v in result.variants}


def test_counts_rates_latency_and_cost_match_the_hand_computed_values(known):
    v = _by_name(statistics.for_experiment(known))

    c, t, s = v["control"], v["treatment"], v["shadow"]
    assert (c.requests, c.units, c.errors, c.feedback, c.positives, c.scores) == (10, 4, 1, 7, 5, 4)
    assert (t.requests, t.units, t.errors, t.feedback, t.positives, t.scores) == (20, 10, 2, 10, 9, 5)
    assert (s.requests, s.units, s.errors, s.feedback, s.positives, s.scores) == (3, 1, 0, 3, 2, 0)
    assert c.error_rate == 0.1 and t.error_rate == 0.1
    assert c.feedback_rate == 0.7 and c.positive_rate == 5 / 7 and t.positive_rate == 0.9
    # percentile_cont: position p x (n - 1) between the sorted values
    assert c.latency_p50_ms == pytest.approx(5.5) and c.latency_p95_ms == pytest.approx(9.55)
    assert t.latency_p50_ms == pytest.approx(21.0) and t.latency_p95_ms == pytest.approx(38.1)
    assert c.cost_per_request == pytest.approx(0.00055) and t.cost_per_request == pytest.approx(0.0002)
    assert c.score_mean == pytest.approx(0.6) and c.score_variance == pytest.approx(0.62 / 3)
    assert t.score_mean == pytest.approx(0.7) and t.score_variance == pytest.approx(0.2)
    assert s.score_mean is None


def test_confidence_intervals_are_wilson_and_student_t(known):
    v = _by_name(statistics.for_experiment(known))

    assert v["control"].error_ci == pytest.approx(wilson(1, 10))
    assert v["control"].feedback_ci == pytest.approx(wilson(7, 10))
    assert v["treatment"].positive_ci == pytest.approx(wilson(9, 10))
    half = scipy_stats.t.ppf(0.975, 4) * math.sqrt(0.2 / 5)
    assert v["treatment"].score_ci == pytest.approx((0.7 - half, 0.7 + half))


def test_differences_to_control_carry_the_right_p_values(known):
    treatment = _by_name(statistics.for_experiment(known))["treatment"]

    errors = treatment.vs_control["error_rate"]
    assert errors.difference == pytest.approx(0.0) and errors.p_value == pytest.approx(1.0)

    positive = treatment.vs_control["positive_rate"]
    pooled = (9 + 5) / (10 + 7)
    z = (0.9 - 5 / 7) / math.sqrt(pooled * (1 - pooled) * (1 / 10 + 1 / 7))
    assert positive.difference == pytest.approx(0.9 - 5 / 7)
    assert positive.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))

    score = treatment.vs_control["score"]
    a, b = 0.2 / 5, (0.62 / 3) / 4
    t = (0.7 - 0.6) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / 4 + b * b / 3)
    assert score.difference == pytest.approx(0.1)
    assert score.p_value == pytest.approx(2 * scipy_stats.t.sf(abs(t), df))


def test_balanced_split_passes_the_sample_ratio_check(known):
    result = statistics.for_experiment(known)

    # 4 and 10 units against 50/50: chi-squared 18/7 on one degree of freedom
    assert result.srm_p_value == pytest.approx(math.erfc(math.sqrt(18 / 7 / 2)))
    assert not result.srm_flagged


@pytest.mark.parametrize(("control_units", "flagged"), [(600, True), (510, False)], ids=["60-40", "51-49"])
def test_sample_ratio_mismatch_is_flagged_on_a_skewed_split(control_units, flagged):
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="control", weight=50, is_control=True)
    VariantFactory(experiment=experiment, name="treatment", weight=50)
    RequestLog.objects.bulk_create(
        RequestLogFactory.build(
            experiment=experiment, variant="control" if i < control_units else "treatment", unit=f"u{i}"
        )
        for i in range(1000)
    )

    result = statistics.for_experiment(experiment)

    chi2 = 2 * (control_units - 500) ** 2 / 500
    assert result.srm_p_value == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))
    assert result.srm_flagged is flagged


def test_statistics_cost_the_same_few_queries_however_many_rows(known):
    with CaptureQueriesContext(connection) as few:
        statistics.for_experiment(known)
    RequestLog.objects.bulk_create(
        RequestLogFactory.build(experiment=known, variant="treatment", unit=f"more{i}") for i in range(500)
    )

    with CaptureQueriesContext(connection) as many:
        result = statistics.for_experiment(known)

    assert _by_name(result)["treatment"].requests == 520
    assert len(many) == len(few) <= 2 + 2 * 3  # variants, one aggregate, two percentiles per variant
