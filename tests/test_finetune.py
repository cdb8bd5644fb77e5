"""`trainclassifier --fine-tune` on small slices of SST-2: each run takes seconds on two cores."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from experiments import statistics
from experiments.models import ExperimentStatus
from experiments.services import experiment_promote_winner
from gateway.models import AuditAction, AuditEvent
from inference.fine_tuning import BEST_FILE, CHECKPOINT_FILE
from inference.labelled_data import read_examples, split
from inference.models import Backend, Evaluation, ModelVersion, Status, TrainingMethod, TrainingRun, TrainingStatus
from inference.training import file_sha256
from tests.factories import SENTIMENT_PROTOTYPES, APIKeyFactory, ModelVersionFactory, started_experiment

pytestmark = pytest.mark.usefixtures("default_models")

# A rate that learns something in the 25 steps of one epoch on 400 sentences.
SMALL_SLICE_RATE = "3e-4"


def _fine_tune(sst2_file, *extra) -> str:
    out = io.StringIO()
    call_command(
        "trainclassifier", "--fine-tune", "--data", str(sst2_file), "--name", "sentiment",
        "--label-names", "0=NEGATIVE", "1=POSITIVE", "--batch-size", "16", *extra, stdout=out, verbosity=0,
    )  # fmt: skip
    return out.getvalue()


def _tuned_on_500(sst2_file, version: str) -> ModelVersion:
    _fine_tune(
        sst2_file, "--limit", "500", "--epochs", "1", "--learning-rate", SMALL_SLICE_RATE, "--model-version", version
    )
    return ModelVersion.objects.get(name="sentiment", version=version)


def test_one_epoch_on_500_sentences_registers_a_draft_the_gateway_serves(sst2_file, model_store, authed, api_key):
    tuned = _tuned_on_500(sst2_file, "ft-500")

    metrics = tuned.metrics
    assert (tuned.status, tuned.backend, tuned.labels) == (Status.DRAFT, Backend.TRANSFORMERS, ["NEGATIVE", "POSITIVE"])
    assert tuned.source == "store:sentiment/ft-500" and (model_store / "sentiment" / "ft-500" / "config.json").is_file()
    assert tuned.data_sha256 == file_sha256(sst2_file)
    assert (metrics["train_examples"], metrics["heldout_examples"]) == (400, 100)
    assert (metrics["stopped"], metrics["steps"], metrics["epochs"]) == ("completed", 25, 1.0)
    assert metrics["heldout_accuracy"] > metrics["majority_baseline"]
    assert [h["step"] for h in metrics["history"]] == [25]
    # Evaluated at once on its validation split, through the backend that serves it.
    evaluation = Evaluation.objects.get(version=tuned)
    assert evaluation.examples == 100 and evaluation.split == metrics["split"]
    assert evaluation.accuracy == pytest.approx(metrics["heldout_accuracy"], abs=0.02)
    assert AuditEvent.objects.get(model_version=tuned).action == AuditAction.REGISTER

    api_key.may_pin_drafts = True  # a draft answers only keys allowed to pin drafts
    api_key.save()
    body = authed.post("/api/v1/predict", {"text": "a triumph", "model": "sentiment:ft-500"}, format="json").json()
    assert body["model_version"] == "ft-500" and body["label"] in ("NEGATIVE", "POSITIVE")


def test_a_resumed_run_continues_from_the_checkpoint(sst2_file, model_store, tmp_path):
    # 200 sentences: 160 to train on, 10 steps an epoch.
    first = _fine_tune(sst2_file, "--limit", "200", "--epochs", "1", "--max-steps", "4", "--model-version", "part-1")
    stopped = ModelVersion.objects.get(version="part-1").metrics
    checkpoint = model_store / ".checkpoints" / "sentiment" / "part-1"
    assert (stopped["stopped"], stopped["steps"]) == ("step budget (4 steps)", 4)
    assert (checkpoint / CHECKPOINT_FILE).is_file() and (checkpoint / BEST_FILE).is_file()
    assert f"--resume {checkpoint}" in first

    _fine_tune(sst2_file, "--resume", str(checkpoint), "--epochs", "1", "--model-version", "part-2")

    resumed = ModelVersion.objects.get(version="part-2").metrics
    assert (resumed["resumed_from_step"], resumed["steps"], resumed["stopped"]) == (4, 10, "completed")
    assert [h["step"] for h in resumed["history"]] == [4, 10]
    assert resumed["split"] == stopped["split"]

    other = tmp_path / "other.tsv"
    other.write_text("".join(sst2_file.read_text().splitlines(keepends=True)[:400]))
    with pytest.raises(CommandError, match="not the file the checkpoint"):
        _fine_tune(other, "--resume", str(checkpoint), "--model-version", "part-3")


def test_the_time_budget_stops_training_and_keeps_what_it_learnt(sst2_file, model_store):
    _fine_tune(
        sst2_file, "--limit", "2000", "--holdout", "0.05", "--epochs", "3", "--max-minutes", "0.25",
        "--model-version", "budget",
    )  # fmt: skip

    metrics = ModelVersion.objects.get(version="budget").metrics
    assert metrics["stopped"] == "time budget (0.25 min)"
    assert 0 < metrics["steps"] < 3 * 119  # 1,900 sentences: 119 steps an epoch
    assert metrics["train_seconds"] < 15  # the budget covers loading the model too
    assert metrics["heldout_accuracy"] is not None and metrics["history"][-1]["step"] == metrics["steps"]
    assert (model_store / ".checkpoints" / "sentiment" / "budget" / CHECKPOINT_FILE).is_file()


def test_a_fine_tuning_run_queued_in_the_admin_records_its_progress(
    sst2_file, model_store, operator, django_capture_on_commit_callbacks, eager_jobs
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/admin/inference/trainingrun/add/",
            {
                "data_path": str(sst2_file), "base": "embeddings", "name": "sentiment", "version": "from-admin",
                "label_names": '{"0": "NEGATIVE", "1": "POSITIVE"}', "limit": "100", "holdout": "0.2",
                "method": TrainingMethod.FINE_TUNE, "epochs": "1", "max_minutes": "5",
            },
        )  # fmt: skip

    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.status == TrainingStatus.SUCCEEDED, run.message
    assert run.progress == 100 and run.result.backend == Backend.TRANSFORMERS
    assert run.result.metrics["hyperparameters"]["max_minutes"] == 5
    listing = operator.get("/admin/inference/trainingrun/").content.decode()
    assert '<progress value="100" max="100">' in listing and "Registered sentiment:from-admin" in listing


def test_a_fine_tuned_draft_wins_an_experiment_and_is_promoted(sst2_file, model_store):
    tuned = _tuned_on_500(sst2_file, "ft-candidate")
    # Production answers the opposite of what it means (its prototypes are swapped), so the
    # candidate's lead is beyond doubt at this sample size.
    swapped = dict(zip(SENTIMENT_PROTOTYPES, reversed(SENTIMENT_PROTOTYPES.values()), strict=True))
    production = ModelVersionFactory(version="inverted", config={"prototypes": swapped, "temperature": 0.05})
    production.promote()
    experiment = started_experiment(("control", production, 50), ("fine-tuned", tuned, 50))
    key = APIKeyFactory(requests_per_minute=1000)  # 160 calls: past the default 100 a minute
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key.plaintext)
    examples = read_examples(sst2_file, {"0": "NEGATIVE", "1": "POSITIVE"})
    seen = {e.text for part in split(examples, holdout=0.2, limit=500, seed=0) for e in part}
    unseen = [e for e in examples if e.text not in seen][:80]
    for i, example in enumerate(unseen):
        answer = caller.post("/api/v1/predict", {"text": example.text}, format="json", HTTP_X_USER_ID=f"u{i}").json()
        feedback = caller.post(
            "/api/v1/feedback", {"request_id": answer["request_id"], "label": example.label}, format="json"
        )
        assert feedback.status_code == 201

    stats = {v.name: v for v in statistics.for_experiment(experiment).variants}
    assert stats["control"].feedback + stats["fine-tuned"].feedback == 80
    assert stats["fine-tuned"].positive_rate > stats["control"].positive_rate
    winner = experiment_promote_winner(experiment, actor="tests")

    assert winner.name == "fine-tuned"
    tuned.refresh_from_db()
    experiment.refresh_from_db()
    assert tuned.status == Status.PRODUCTION and experiment.status == ExperimentStatus.STOPPED
    assert ModelVersion.objects.get(pk=production.pk).status == Status.STAGING
    assert AuditEvent.objects.filter(model_version=tuned, action=AuditAction.PROMOTE).exists()
