"""How well a classifier version answers a labelled file, in figures an operator can read.

Accuracy, per-label precision/recall/F1, the confusion matrix, expected calibration error (how far
the stated confidence is from the accuracy at that confidence) and throughput. The version runs
through the same backend the gateway serves it with, in length-sorted batches, so the throughput
is that of a busy server's batches on this machine.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from inference.backends import load_runner
from inference.labelled_data import Example, TrainingError
from inference.models import Evaluation, ModelVersion, Task

EVALUATION_BATCH = 32
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float


def classification_report(*, labels: Sequence[str], truth: Sequence[str], predictions: Sequence[Prediction]) -> dict:
    """The figures for `predictions` against `truth`; `labels` fixes the order of rows and columns."""
    n = len(truth)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for true, predicted in zip(truth, predictions, strict=True):
        matrix[index[true]][index[predicted.label]] += 1
    per_label = {}
    for i, label in enumerate(labels):
        hits = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    supported = [figures["f1"] for figures in per_label.values() if figures["support"]]
    bins, ece = _calibration(truth, predictions)
    return {
        "examples": n,
        "accuracy": round(sum(matrix[i][i] for i in range(len(labels))) / n, 4),
        "macro_f1": round(sum(supported) / len(supported), 4),
        "per_label": per_label,
        "confusion": {"labels": list(labels), "matrix": matrix},
        "ece": round(ece, 4),
        "calibration": bins,
    }


def _calibration(truth: Sequence[str], predictions: Sequence[Prediction]) -> tuple[list[dict], float]:
    """Equal-width confidence bins; ECE is the bins' |accuracy - mean confidence|, weighted by their share."""
    groups: list[list[tuple[bool, float]]] = [[] for _ in range(CALIBRATION_BINS)]
    for true, predicted in zip(truth, predictions, strict=True):
        slot = min(int(predicted.confidence * CALIBRATION_BINS), CALIBRATION_BINS - 1)
        groups[slot].append((predicted.label == true, predicted.confidence))
    bins, ece = [], 0.0
    for slot, group in enumerate(groups):
        if not group:
            continue
        accuracy = sum(correct for correct, _ in group) / len(group)
        confidence = sum(c for _, c in group) / len(group)
        ece += len(group) / len(truth) * abs(accuracy - confidence)
        bins.append(
            {
                "from": slot / CALIBRATION_BINS,
                "to": (slot + 1) / CALIBRATION_BINS,
                "count": len(group),
                "accuracy": round(accuracy, 4),
                "confidence": round(confidence, 4),
            }
        )
    return bins, ece


def predict(
    runner: Callable, texts: Sequence[str], *, batch_size: int, report: Callable[[int], None]
) -> tuple[list[Prediction], float]:
    """Each text's answer, and the seconds the forward passes took (batches sorted by length)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    answers: list[Prediction | None] = [None] * len(texts)
    seconds = 0.0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        began = time.perf_counter()
        outputs = runner([texts[i] for i in chunk])
        seconds += time.perf_counter() - began
        for i, output in zip(chunk, outputs, strict=True):
            answers[i] = Prediction(output.result["label"], output.result["confidence"])
        report(start + len(chunk))
    return answers, seconds


def model_version_evaluate(
    *,
    version: ModelVersion,
    examples: list[Example],
    data_path: str,
    data_sha256: str,
    split: str = "",
    actor: str,
    batch_size: int = EVALUATION_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Run the version on the examples and store the figures as an Evaluation of it."""
    if version.task != Task.TEXT_CLASSIFICATION or not version.is_local:
        raise TrainingError(f"{version} is not a local text classifier; only those are evaluated here.")
    if not examples:
        raise TrainingError("There are no examples to evaluate on.")
    runner = load_runner(version)
    labels = list(runner.labels)
    unknown = sorted({e.label for e in examples} - set(labels))
    if unknown:
        raise TrainingError(
            f"The data's labels {unknown} are not among {version}'s labels {labels}; "
            "rename them with --label-names, e.g. 0=NEGATIVE 1=POSITIVE."
        )
    predictions, seconds = predict(
        runner, [e.text for e in examples], batch_size=batch_size, report=progress or (lambda done: None)
    )
    report = classification_report(labels=labels, truth=[e.label for e in examples], predictions=predictions)
    throughput = len(examples) / seconds if seconds else 0.0
    report["run"] = {
        "seconds": round(seconds, 2),
        "batch_size": batch_size,
        "runtime": runner.runtime,
        "torch_threads": torch.get_num_threads(),
    }
    return Evaluation.objects.create(
        version=version,
        data_path=data_path,
        data_sha256=data_sha256,
        split=split,
        examples=report["examples"],
        accuracy=report["accuracy"],
        macro_f1=report["macro_f1"],
        ece=report["ece"],
        throughput=round(throughput, 1),
        report=report,
        created_by=actor,
    )


# (figure, key in the report, whether lower is better)
_HEADLINE = [
    ("accuracy", "accuracy", False),
    ("macro F1", "macro_f1", False),
    ("expected calibration error", "ece", True),
]


def side_by_side(first: Evaluation, second: Evaluation) -> list[dict]:
    """Rows of figures for two evaluations: name, first, second, second minus first, and which is better."""
    rows = [
        _row(title, first.report[key], second.report[key], lower_is_better) for title, key, lower_is_better in _HEADLINE
    ]
    rows.append(_row("throughput (sentences/s)", first.throughput, second.throughput, False, digits=1))
    labels = list(dict.fromkeys([*first.report["per_label"], *second.report["per_label"]]))
    for label in labels:
        for figure in ("precision", "recall", "f1"):
            a = first.report["per_label"].get(label, {}).get(figure)
            b = second.report["per_label"].get(label, {}).get(figure)
            rows.append(_row(f"{label} {figure}", a, b, False))
    return rows


def _row(title: str, a: float | None, b: float | None, lower_is_better: bool, digits: int = 4) -> dict:
    difference = None if a is None or b is None else round(b - a, digits)
    better = ""
    if difference:
        better = "second" if (difference < 0) == lower_is_better else "first"
    return {"figure": title, "first": a, "second": b, "difference": difference, "better": better}
