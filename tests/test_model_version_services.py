import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from experiments.models import Feedback
from gateway.models import AuditAction, AuditEvent
from inference.management.commands.bootstrap import DEFAULT_VERSIONS
from inference.models import ModelVersion, Status, TrainingRun, TrainingStatus
from inference.services import model_version_register
from inference.tasks import train_classifier_run
from tests.factories import ModelVersionFactory, RequestLogFactory, started_experiment

LIST = "/admin/inference/modelversion/"


def _history(version: ModelVersion) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(model_version=version).order_by("pk").values_list("action", "actor"))


@pytest.fixture
def production(default_models):
    return ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)


def _form(**fields):
    """The admin add/change form's POST for a zero-shot sentiment version (and its history inline)."""
    version = ModelVersionFactory.build()
    return {
        "name": version.name,
        "version": version.version,
        "task": version.task,
        "backend": version.backend,
        "status": Status.STAGING,
        "notes": "",
        "source": version.source,
        "labels": "[]",
        "config": '{"prototypes": {"POSITIVE": ["good"], "NEGATIVE": ["bad"]}}',
        "runtime": "torch",
        "upstream_model": "",
        "input_cost_per_1k": "0",
        "output_cost_per_1k": "0",
        "cost_per_request": "0",
        "max_input_chars": "4000",
        "max_tokens_cap": "4096",
        "default_max_tokens": "500",
        "max_batch_size": "32",
        "max_batch_wait_ms": "5",
        "cache_ttl_s": "3600",
        "cache_scope": "team",
        "cache_stale_if_error_s": "0",
        "content_filter": "redact",
        "audit_events-TOTAL_FORMS": "0",
        "audit_events-INITIAL_FORMS": "0",
        "audit_events-MIN_NUM_FORMS": "0",
        "audit_events-MAX_NUM_FORMS": "1000",
        "evaluations-TOTAL_FORMS": "0",
        "evaluations-INITIAL_FORMS": "0",
        "evaluations-MIN_NUM_FORMS": "0",
        "evaluations-MAX_NUM_FORMS": "1000",
        **fields,
    }


@pytest.mark.django_db
def test_bootstrap_registers_and_promotes_each_default_with_one_event_each_and_a_rerun_adds_none():
    call_command("bootstrap", verbosity=0)
    call_command("bootstrap", verbosity=0)

    for spec in DEFAULT_VERSIONS:
        version = ModelVersion.objects.get(name=spec["name"], version=spec["version"])
        assert version.status == Status.PRODUCTION
        assert _history(version) == [
            (AuditAction.REGISTER, "bootstrap command"),
            (AuditAction.PROMOTE, "bootstrap command"),
        ]


def test_promoting_in_the_admin_leaves_one_event_and_steps_the_old_version_down_with_its_own(operator, production):
    candidate = ModelVersionFactory(version="candidate")

    operator.post(LIST, {"action": "promote", "_selected_action": [candidate.pk]})

    assert _history(candidate) == [(AuditAction.PROMOTE, "ops-admin")]
    production.refresh_from_db()
    assert production.status == Status.STAGING
    step_down = AuditEvent.objects.get(model_version=production, action=AuditAction.DEMOTE)
    assert step_down.actor == "ops-admin" and "sentiment:candidate was promoted" in step_down.message
    page = operator.get(f"{LIST}{production.pk}/change/").content.decode()
    assert "Stepped down to staging" in page


def test_a_version_added_as_production_in_the_admin_is_registered_then_promoted(operator):
    response = operator.post(f"{LIST}add/", _form(name="toxicity", version="added", status=Status.PRODUCTION))

    assert response.status_code == 302, response.context["adminform"].form.errors
    added = ModelVersion.objects.get(version="added")
    assert added.status == Status.PRODUCTION
    assert _history(added) == [(AuditAction.REGISTER, "ops-admin"), (AuditAction.PROMOTE, "ops-admin")]


def test_archiving_through_the_change_form_is_audited_like_the_archive_action(operator, production):
    version = ModelVersionFactory(version="to-archive")
    form = _form(version="to-archive", status=Status.ARCHIVED, notes="superseded")

    response = operator.post(f"{LIST}{version.pk}/change/", form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    version.refresh_from_db()
    assert (version.status, version.notes) == (Status.ARCHIVED, "superseded")
    assert _history(version) == [(AuditAction.ARCHIVE, "ops-admin")]


def test_a_training_run_registers_its_version_as_a_draft_with_one_event(default_models, model_store, tmp_path):
    data = tmp_path / "reviews.tsv"
    positive = ["great film", "loved it", "wonderful", "delightful", "excellent acting"]
    negative = ["awful film", "hated it", "terrible", "boring mess", "dreadful acting"]
    data.write_text(
        "sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in positive) + "".join(f"{t}\t0\n" for t in negative)
    )
    run = TrainingRun.objects.create(
        data_path=str(data),
        name="sentiment",
        version="trained",
        label_names={"0": "NEGATIVE", "1": "POSITIVE"},
        requested_by="ops-admin",
    )

    train_classifier_run(run.pk)

    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.message
    assert run.result.status == Status.DRAFT
    assert _history(run.result) == [(AuditAction.REGISTER, "ops-admin")]
    assert "held-out accuracy" in AuditEvent.objects.get(model_version=run.result).message


def test_promoting_the_winner_of_an_experiment_leaves_one_promotion_and_one_step_down(operator, production):
    candidate = ModelVersionFactory(version="candidate")
    experiment = started_experiment(("control", production, 50), ("treatment", candidate, 50))
    for variant, version, agree in (("control", production, 70), ("treatment", candidate, 90)):
        for i in range(100):
            row = RequestLogFactory(
                experiment=experiment,
                variant=variant,
                model_version=version,
                unit=f"{variant}{i}",
                output_label="POSITIVE",
            )
            Feedback.objects.create(
                request=row, request_uuid=row.request_id, label="POSITIVE" if i < agree else "NEGATIVE"
            )

    operator.post("/admin/experiments/experiment/", {"action": "promote_winner", "_selected_action": [experiment.pk]})

    promotion = AuditEvent.objects.get(model_version=candidate, action=AuditAction.PROMOTE)
    assert promotion.experiment == experiment and promotion.actor == "ops-admin"
    assert "previous production version: sentiment:sst2-head-minilm-v1" in promotion.message
    step_down = AuditEvent.objects.get(model_version=production, action=AuditAction.DEMOTE)
    assert step_down.experiment == experiment


@pytest.mark.django_db
def test_a_version_cannot_be_registered_straight_into_production():
    with pytest.raises(ValidationError, match="then promote it"):
        model_version_register(version=ModelVersionFactory.build(status=Status.PRODUCTION), actor="tests")

    assert not ModelVersion.objects.exists() and not AuditEvent.objects.exists()
