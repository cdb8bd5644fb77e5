import pytest

from experiments.models import Experiment, ExperimentStatus, Feedback, Variant
from gateway.models import AuditAction, AuditEvent
from inference.models import ModelVersion, Status
from tests.factories import (
    ExperimentFactory,
    ModelVersionFactory,
    RequestLogFactory,
    VariantFactory,
    started_experiment,
)

pytestmark = pytest.mark.usefixtures("default_models")


@pytest.fixture
def production():
    return ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)


def _form(experiment_fields, variants, existing=()):
    """The admin change form's POST: experiment fields plus the variant inline formset."""
    data = {
        "name": "trained-head-vs-zero-shot",
        "model_name": "sentiment",
        "description": "",
        "coverage": "100",
        "salt": "a1b2c3",
        "guardrail_enabled": "on",
        "guardrail_min_requests": "100",
        "guardrail_p_value": "0.01",
        "variants-TOTAL_FORMS": str(len(variants)),
        "variants-INITIAL_FORMS": str(len(existing)),
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "audit_events-TOTAL_FORMS": "0",
        "audit_events-INITIAL_FORMS": "0",
        **experiment_fields,
    }
    for i, (name, version, weight, control) in enumerate(variants):
        data |= {
            f"variants-{i}-name": name,
            f"variants-{i}-model_version": str(version.pk),
            f"variants-{i}-mode": "live",
            f"variants-{i}-weight": str(weight),
        }
        if control:
            data[f"variants-{i}-is_control"] = "on"
        if i < len(existing):
            data[f"variants-{i}-id"] = str(existing[i].pk)
            data[f"variants-{i}-experiment"] = str(existing[i].experiment_id)
    return data


def test_weights_not_summing_to_100_are_refused_with_a_clear_error(operator, production):
    candidate = ModelVersionFactory(version="candidate")

    response = operator.post(
        "/admin/experiments/experiment/add/",
        _form({}, [("control", production, 50, True), ("treatment", candidate, 30, False)]),
    )

    assert response.status_code == 200
    assert "weights must sum to 100; they sum to 80" in response.content.decode()
    assert not Experiment.objects.exists()


def test_an_experiment_is_created_with_inline_weights(operator, production):
    candidate = ModelVersionFactory(version="candidate")

    response = operator.post(
        "/admin/experiments/experiment/add/",
        _form({}, [("control", production, 70, True), ("treatment", candidate, 30, False)]),
    )

    assert response.status_code == 302
    experiment = Experiment.objects.get()
    assert [(v.name, v.weight, v.is_control) for v in experiment.variants.all()] == [
        ("control", 70, True),
        ("treatment", 30, False),
    ]


def test_start_pause_and_stop_actions_are_audited_per_version(operator, production):
    candidate = ModelVersionFactory(version="candidate")
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="control", model_version=production, weight=50, is_control=True)
    VariantFactory(experiment=experiment, name="treatment", model_version=candidate, weight=50)

    for action, status in [("start", "running"), ("pause", "paused"), ("start", "running"), ("stop", "stopped")]:
        operator.post("/admin/experiments/experiment/", {"action": action, "_selected_action": [experiment.pk]})
        experiment.refresh_from_db()
        assert experiment.status == status

    history = AuditEvent.objects.filter(model_version=candidate).order_by("pk")
    assert [e.action for e in history] == ["start", "pause", "start", "stop"]
    assert {e.actor for e in history} == {"ops-admin"}
    assert "resumed" in history[2].message
    page = operator.get(f"/admin/inference/modelversion/{candidate.pk}/change/").content.decode()
    assert f"Experiment {experiment} stopped" in page and "ops-admin" in page


def test_a_weight_change_on_a_running_experiment_is_audited_with_before_and_after(operator, production):
    candidate = ModelVersionFactory(version="candidate")
    experiment = started_experiment(("control", production, 50), ("treatment", candidate, 50))
    control, treatment = experiment.variants.order_by("pk")

    response = operator.post(
        f"/admin/experiments/experiment/{experiment.pk}/change/",
        _form(
            {"coverage": "60"},
            [("control", production, 80, True), ("treatment", candidate, 20, False)],
            existing=[control, treatment],
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(experiment.variants.values_list("weight", flat=True).order_by("pk")) == [80, 20]
    event = AuditEvent.objects.filter(model_version=candidate, action=AuditAction.WEIGHTS).get()
    assert event.actor == "ops-admin"
    assert "coverage 100% → 60%" in event.message
    assert "control: weight 50 → 80" in event.message and "treatment: weight 50 → 20" in event.message


def test_the_salt_is_fixed_once_the_experiment_has_started(operator, production):
    experiment = started_experiment(("control", production, 50), ("treatment", ModelVersionFactory(), 50))

    page = operator.get(f"/admin/experiments/experiment/{experiment.pk}/change/").content.decode()

    assert 'name="salt"' not in page and experiment.salt in page


def _feedback_rows(experiment, variant, version, agree, disagree):
    for i in range(agree + disagree):
        row = RequestLogFactory(
            experiment=experiment, variant=variant, model_version=version, unit=f"{variant}{i}", output_label="POSITIVE"
        )
        label = "POSITIVE" if i < agree else "NEGATIVE"
        Feedback.objects.create(request=row, request_uuid=row.request_id, label=label)


def test_promote_the_winner_promotes_a_significantly_better_variant_and_stops(operator, production):
    candidate = ModelVersionFactory(version="candidate")
    experiment = started_experiment(("control", production, 50), ("treatment", candidate, 50))
    _feedback_rows(experiment, "control", production, agree=70, disagree=30)
    _feedback_rows(experiment, "treatment", candidate, agree=90, disagree=10)

    operator.post("/admin/experiments/experiment/", {"action": "promote_winner", "_selected_action": [experiment.pk]})

    candidate.refresh_from_db()
    experiment.refresh_from_db()
    assert candidate.status == Status.PRODUCTION
    assert ModelVersion.objects.get(pk=production.pk).status == Status.STAGING
    assert experiment.status == ExperimentStatus.STOPPED
    promotion = AuditEvent.objects.get(model_version=candidate, action=AuditAction.PROMOTE)
    assert promotion.actor == "ops-admin" and f"winner of {experiment}" in promotion.message


def test_promote_the_winner_refuses_without_a_significant_difference(operator, production):
    candidate = ModelVersionFactory(version="candidate")
    experiment = started_experiment(("control", production, 50), ("treatment", candidate, 50))
    _feedback_rows(experiment, "control", production, agree=8, disagree=2)
    _feedback_rows(experiment, "treatment", candidate, agree=9, disagree=1)

    response = operator.post(
        "/admin/experiments/experiment/",
        {"action": "promote_winner", "_selected_action": [experiment.pk]},
        follow=True,
    )

    assert "nothing was promoted" in response.content.decode()
    assert ModelVersion.objects.get(pk=candidate.pk).status == Status.STAGING
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.RUNNING


def test_statistics_page_shows_each_variant_and_flags_a_sample_ratio_mismatch(operator, production):
    experiment = started_experiment(("control", production, 50), ("treatment", ModelVersionFactory(), 50))
    for i in range(300):
        RequestLogFactory(experiment=experiment, variant="control" if i < 200 else "treatment", unit=f"u{i}")

    changelist = operator.get("/admin/experiments/experiment/").content.decode()
    page = operator.get(f"/admin/experiments/experiment/{experiment.pk}/statistics/").content.decode()

    assert f"/admin/experiments/experiment/{experiment.pk}/statistics/" in changelist
    assert "Sample ratio mismatch" in page
    assert "control (control)" in page and "treatment" in page
    assert "<td>200</td>" in page and "<td>100</td>" in page


def test_promoting_and_archiving_a_version_are_audited(operator):
    version = ModelVersionFactory(version="next")

    operator.post("/admin/inference/modelversion/", {"action": "promote", "_selected_action": [version.pk]})
    operator.post("/admin/inference/modelversion/", {"action": "archive", "_selected_action": [version.pk]})

    actions = list(AuditEvent.objects.filter(model_version=version).order_by("pk").values_list("action", "actor"))
    assert actions == [("promote", "ops-admin"), ("archive", "ops-admin")]
    assert (
        "previous production version: sentiment:sst2-head-minilm-v1"
        in AuditEvent.objects.get(model_version=version, action="promote").message
    )


def test_variants_keep_their_rows_when_versions_are_protected(production):
    experiment = started_experiment(("control", production, 50), ("treatment", ModelVersionFactory(), 50))

    with pytest.raises(Exception, match="protected"):
        production.delete()
    assert Variant.objects.filter(experiment=experiment).count() == 2
