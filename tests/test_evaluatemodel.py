import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError

from inference.models import Evaluation, ModelVersion, Status
from tests.factories import ModelVersionFactory, StaffUserFactory

pytestmark = pytest.mark.usefixtures("default_models")

# Ten rows whose answers are not in doubt, three of them labelled against their plain meaning,
# so every cell of the confusion matrix is counted: (text, label in the file, meaning).
ROWS = [
    ("a wonderful , moving and beautifully acted film .", "POSITIVE", "POSITIVE"),
    ("one of the best movies of the year .", "POSITIVE", "POSITIVE"),
    ("a delightful , funny and charming comedy .", "POSITIVE", "POSITIVE"),
    ("brilliant performances and a gripping story .", "POSITIVE", "POSITIVE"),
    ("a dull , boring waste of time .", "NEGATIVE", "NEGATIVE"),
    ("the worst film i have seen in years .", "NEGATIVE", "NEGATIVE"),
    ("tedious , clumsy and painfully unfunny .", "NEGATIVE", "NEGATIVE"),
    ("an excellent , touching film .", "NEGATIVE", "POSITIVE"),
    ("great fun from start to finish .", "NEGATIVE", "POSITIVE"),
    ("awful , stupid and badly written .", "POSITIVE", "NEGATIVE"),
]


def _tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label, *_ in rows))
    return path


def _evaluate(*args) -> str:
    out = io.StringIO()
    call_command("evaluatemodel", *args, stdout=out)
    return out.getvalue()


def test_figures_match_a_hand_count_on_ten_rows(tmp_path, authed):
    data = _tsv(tmp_path / "ten.tsv", ROWS)
    answers = [authed.post("/api/v1/predict", {"text": text}, format="json").json() for text, *_ in ROWS]
    assert [a["label"] for a in answers] == [meaning for *_, meaning in ROWS]  # the premise of the count

    output = _evaluate("sentiment", "--data", str(data))

    evaluation = Evaluation.objects.get()
    assert evaluation.version == ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    # Rows are true labels, columns predictions, both NEGATIVE then POSITIVE: 3 negatives answered
    # NEGATIVE, 2 answered POSITIVE; 1 positive answered NEGATIVE, 4 answered POSITIVE.
    assert evaluation.report["confusion"] == {"labels": ["NEGATIVE", "POSITIVE"], "matrix": [[3, 2], [1, 4]]}
    assert evaluation.examples == 10
    assert evaluation.accuracy == 0.7
    assert evaluation.report["per_label"] == {
        "NEGATIVE": {"precision": 0.75, "recall": 0.6, "f1": 0.6667, "support": 5},  # 3/4, 3/5
        "POSITIVE": {"precision": 0.6667, "recall": 0.8, "f1": 0.7273, "support": 5},  # 4/6, 4/5
    }
    assert evaluation.macro_f1 == 0.697
    # Expected calibration error: per tenth of confidence, |accuracy - mean confidence| weighted by its share.
    bins = {}
    for answer, (_, label, _) in zip(answers, ROWS, strict=True):
        bins.setdefault(min(int(answer["confidence"] * 10), 9), []).append(
            (answer["label"] == label, answer["confidence"])
        )
    by_hand = sum(
        len(b) / 10 * abs(sum(c for c, _ in b) / len(b) - sum(p for _, p in b) / len(b)) for b in bins.values()
    )
    assert evaluation.ece == pytest.approx(by_hand, abs=1e-4)
    assert evaluation.throughput > 0 and evaluation.data_sha256 and evaluation.created_by == "evaluatemodel command"
    assert "accuracy 0.7000" in output and "NEGATIVE" in output and f"#{evaluation.pk}" in output


def test_labels_the_model_lacks_are_refused_with_the_way_out(tmp_path):
    data = _tsv(tmp_path / "raw.tsv", [("a fine film", "1"), ("a poor film", "0")])

    with pytest.raises(CommandError, match="--label-names"):
        _evaluate("sentiment", "--data", str(data))
    _evaluate("sentiment", "--data", str(data), "--label-names", "0=NEGATIVE", "1=POSITIVE")

    assert Evaluation.objects.get().examples == 2


def test_unknown_version_and_missing_file_are_refused(tmp_path):
    with pytest.raises(CommandError, match="No text-classification version 'sentiment:nope'"):
        _evaluate("sentiment:nope", "--data", str(tmp_path / "x.tsv"))
    with pytest.raises(CommandError, match="No file at"):
        _evaluate("sentiment", "--data", str(tmp_path / "x.tsv"))
    assert not Evaluation.objects.exists()


def test_holdout_evaluates_the_split_a_training_run_held_out(sst2_file, model_store):
    call_command(
        "trainclassifier", "--data", str(sst2_file), "--name", "sentiment", "--model-version", "small",
        "--label-names", "0=NEGATIVE", "1=POSITIVE", "--limit", "300", "--seed", "3", stdout=io.StringIO(),
    )  # fmt: skip
    at_training = Evaluation.objects.get(version__version="small")

    _evaluate(
        "sentiment:small", "--data", str(sst2_file), "--label-names", "0=NEGATIVE", "1=POSITIVE",
        "--holdout", "0.2", "--limit", "300", "--seed", "3",
    )  # fmt: skip

    again = Evaluation.objects.filter(version__version="small").first()
    assert again.pk != at_training.pk
    assert (again.examples, again.split) == (60, at_training.split)
    assert again.report["confusion"] == at_training.report["confusion"]
    assert at_training.split == "validation split: holdout 0.2 of the first 300 examples of the shuffled file (seed 3)"


def test_admin_shows_two_versions_evaluations_side_by_side(tmp_path, client):
    data = _tsv(tmp_path / "ten.tsv", ROWS)
    zero_shot = ModelVersionFactory(version="zero-shot")
    _evaluate("sentiment", "--data", str(data))
    _evaluate("sentiment:zero-shot", "--data", str(data))
    default = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    viewer = StaffUserFactory()
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_modelversion", "view_evaluation"]))
    client.force_login(viewer)

    page = client.get(f"/admin/inference/modelversion/{default.pk}/change/").content.decode()
    assert "ten.tsv" in page and "0.7" in page
    response = client.post(
        "/admin/inference/modelversion/",
        {"action": "compare_versions", "_selected_action": [default.pk, zero_shot.pk]},
        follow=True,
    )

    page = response.content.decode()
    assert response.status_code == 200 and 'id="evaluation-comparison"' in page
    assert str(default) in page and str(zero_shot) in page
    assert "expected calibration error" in page and "NEGATIVE recall" in page
    assert "Confusion matrices" in page and "different data" not in page
