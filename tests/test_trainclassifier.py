import io
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from experiments import statistics
from gateway.models import AuditAction, AuditEvent, RequestLog
from inference.models import Backend, Evaluation, ModelVersion, Status, TrainingRun, TrainingStatus
from inference.training import file_sha256
from tests.factories import started_experiment
from tests.servers import celery_worker, served_database_url

pytestmark = pytest.mark.usefixtures("default_models")

SLICE = 1000  # SST-2 sentences: 800 to train on, 200 held out


def _train(sst2_file, *extra):
    out = io.StringIO()
    call_command(
        "trainclassifier",
        "--data",
        str(sst2_file),
        "--base",
        "embeddings",
        "--name",
        "sentiment",
        "--label-names",
        "0=NEGATIVE",
        "1=POSITIVE",
        *extra,
        stdout=out,
    )
    return out.getvalue()


@pytest.mark.django_db
def test_trained_head_beats_chance_is_evaluated_and_races_the_default(sst2_file, model_store, authed, client):
    output = _train(sst2_file, "--limit", str(SLICE), "--model-version", "sst2-head")

    trained = ModelVersion.objects.get(name="sentiment", version="sst2-head")
    metrics = trained.metrics
    assert "held-out accuracy" in output
    assert (trained.status, trained.backend, trained.labels) == (
        Status.DRAFT,
        Backend.EMBEDDING_HEAD,
        ["NEGATIVE", "POSITIVE"],
    )
    assert (metrics["train_examples"], metrics["heldout_examples"]) == (800, 200)
    # Chance is the majority label's share of the held-out split; three standard errors above it at least.
    assert metrics["heldout_accuracy"] > metrics["majority_baseline"] + 3 * (0.25 / 200) ** 0.5
    assert trained.data_sha256 == file_sha256(sst2_file)
    assert (model_store / "sentiment" / "sst2-head" / "head.pt").is_file()
    assert AuditEvent.objects.get(model_version=trained).action == AuditAction.REGISTER
    evaluation = Evaluation.objects.get(version=trained)
    assert evaluation.examples == 200
    assert evaluation.accuracy == pytest.approx(metrics["heldout_accuracy"], abs=0.01)  # batches pad differently
    assert evaluation.split == "validation split: holdout 0.2 of the first 1000 examples of the shuffled file (seed 0)"

    default = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    experiment = started_experiment(("default", default, 50), ("trained", trained, 50))
    answers = {}
    for i in range(30):
        body = authed.post(
            "/api/v1/predict",
            {"text": "a gripping, beautifully acted film"},
            format="json",
            HTTP_X_USER_ID=f"reviewer-{i}",
        ).json()
        answers.setdefault(body["variant"], set()).add((body["model_version"], body["label"]))
    assert answers == {"default": {(default.version, "POSITIVE")}, "trained": {("sst2-head", "POSITIVE")}}
    by_variant = {v.name: v for v in statistics.for_experiment(experiment).variants}
    assert by_variant["default"].requests + by_variant["trained"].requests == 30


@pytest.mark.django_db
def test_training_refuses_what_it_cannot_use(sst2_file, model_store, tmp_path):
    headerless = tmp_path / "bad.tsv"
    headerless.write_text("no tabs here\n")

    with pytest.raises(CommandError, match="tab-separated header"):
        _train(headerless)
    with pytest.raises(CommandError, match="No file at"):
        _train(tmp_path / "missing.tsv")
    with pytest.raises(CommandError, match="not a served embeddings version"):
        call_command("trainclassifier", "--data", str(sst2_file), "--base", "sentiment", "--name", "x")
    assert not ModelVersion.objects.filter(status=Status.DRAFT).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_admin_queues_training_on_a_celery_worker_that_reports_progress(sst2_file, model_store, operator, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the worker shares the test database: run on PostgreSQL (make test)")
    env = {"DATABASE_URL": served_database_url(), "MODEL_STORE": str(model_store), "TORCH_THREADS": "1"}
    with celery_worker(env, tmp_path / "worker.log"):
        response = operator.post(
            "/admin/inference/trainingrun/add/",
            {
                "data_path": str(sst2_file),
                "base": "embeddings",
                "name": "sentiment",
                "version": "from-admin",
                "label_names": '{"0": "NEGATIVE", "1": "POSITIVE"}',
                "limit": "300",
                "holdout": "0.2",
                "method": "head",
                "epochs": "3",
            },
        )
        assert response.status_code == 302
        run = TrainingRun.objects.get()
        deadline = time.monotonic() + 300
        while run.status in (TrainingStatus.QUEUED, TrainingStatus.RUNNING) and time.monotonic() < deadline:
            time.sleep(0.5)
            run.refresh_from_db()

    assert run.status == TrainingStatus.SUCCEEDED, (run.message, (tmp_path / "worker.log").read_text()[-3000:])
    assert run.progress == 100 and run.requested_by == "ops-admin"
    assert run.result == ModelVersion.objects.get(version="from-admin")
    assert run.result.metrics["heldout_examples"] == 60
    listing = operator.get("/admin/inference/trainingrun/").content.decode()
    assert "100%" in listing and "Registered sentiment:from-admin" in listing
    assert Evaluation.objects.get(version=run.result).examples == 60
    assert AuditEvent.objects.get(model_version=run.result).actor == "ops-admin"


@pytest.mark.django_db
def test_training_run_form_refuses_a_missing_file(operator, tmp_path):
    response = operator.post(
        "/admin/inference/trainingrun/add/",
        {
            "data_path": str(tmp_path / "nope.tsv"),
            "base": "embeddings",
            "name": "s",
            "holdout": "0.2",
            "label_names": "{}",
            "method": "head",
            "epochs": "3",
        },
    )

    assert response.status_code == 200 and "No file at" in response.content.decode()
    assert not TrainingRun.objects.exists()
    assert not RequestLog.objects.exists()
