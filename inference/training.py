"""Versions from data: a classification head trained on a registered encoder's frozen embeddings.

Logistic regression (one linear layer, L2-regularised, fitted with L-BFGS) on the unit
sentence embeddings. The encoder is shared with the versions already serving it, so a
trained head costs one small matrix product per batch on top of the embedding. The pieces
every training method shares (reading and splitting the data, saving atomically, registering
the draft and evaluating it on its validation split) are here too; fine-tuning the encoder
itself is inference/fine_tuning.py.
"""

import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from django.conf import settings
from django.utils import timezone

from inference import registry
from inference.backends.embedding_head import save_head
from inference.backends.loading import encoder_for
from inference.evaluation import model_version_evaluate
from inference.labelled_data import Example, TrainingError, describe_split, file_sha256, read_examples, split
from inference.models import Backend, ModelVersion, Status, Task
from inference.services import model_version_register

# Inputs per forward pass while embedding the training set, sorted by length so
# each batch pads little (../shared/MEASUREMENTS.md: sorting alone gave 1.9x).
ENCODE_BATCH = 64
L2_PENALTY = 1e-4
LBFGS_STEPS = 200

Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class TrainingData:
    """A labelled file read, hashed and split for training."""

    path: Path
    sha256: str
    train: list[Example]
    validation: list[Example]
    labels: list[str]
    split: str

    def summary(self) -> dict:
        """The metrics every trained version records about its data."""
        majority = Counter(e.label for e in self.train).most_common(1)[0][0]
        return {
            "majority_baseline": _accuracy([majority] * len(self.validation), self.validation),
            "train_examples": len(self.train),
            "heldout_examples": len(self.validation),
            "label_counts": dict(Counter(e.label for e in self.train + self.validation)),
            "split": self.split,
        }


def prepare(
    *,
    data_path: str,
    base: str,
    name: str,
    version: str,
    default_prefix: str,
    label_names: dict[str, str] | None,
    limit: int | None,
    holdout: float,
    seed: int,
) -> tuple[ModelVersion, str, TrainingData]:
    """Check a training request and read its data: (the encoder version, the new version string, the data)."""
    path = Path(data_path)
    if not path.is_file():
        raise TrainingError(f"No file at {data_path}.")
    encoder_version = registry.resolve(base, task=Task.EMBEDDINGS)
    if encoder_version is None or encoder_version.backend != Backend.TRANSFORMERS:
        raise TrainingError(f"'{base}' is not a served embeddings version to train on.")
    version = version or f"{default_prefix}-{timezone.now():%Y%m%d-%H%M%S}"
    if ModelVersion.objects.filter(name=name, version=version).exists():
        raise TrainingError(f"{name}:{version} already exists.")
    if (settings.MODEL_STORE / name / version).exists():
        raise TrainingError(f"{settings.MODEL_STORE / name / version} already exists.")
    train, validation = split(read_examples(path, label_names), holdout=holdout, limit=limit, seed=seed)
    data = TrainingData(
        path=path,
        sha256=file_sha256(path),
        train=train,
        validation=validation,
        labels=sorted({e.label for e in train}),
        split=describe_split(holdout=holdout, limit=limit, seed=seed),
    )
    return encoder_version, version, data


def register_trained(
    unsaved: ModelVersion, *, data: TrainingData, actor: str, how: str, report: Progress
) -> ModelVersion:
    """Register a version saved under MODEL_STORE as a draft, audited, and evaluate it on its validation split."""
    unsaved.status = Status.DRAFT
    unsaved.data_sha256 = data.sha256
    accuracy = unsaved.metrics["heldout_accuracy"]
    model_version_register(
        version=unsaved,
        actor=actor,
        message=f"{how} from {data.path} (sha256 {data.sha256[:12]}…): held-out accuracy "
        f"{accuracy:.3f} vs majority baseline {unsaved.metrics['majority_baseline']:.3f}.",
    )
    total = len(data.validation)
    model_version_evaluate(
        version=unsaved,
        examples=data.validation,
        data_path=str(data.path),
        data_sha256=data.sha256,
        split=data.split,
        actor=actor,
        progress=lambda done: report(97, f"evaluating on the validation split: {done}/{total}"),
    )
    report(100, f"registered {unsaved} as a draft")
    return unsaved


def save_atomically(directory: Path, write: Callable[[Path], None]) -> None:
    """Write beside the target and rename, so a crash never leaves a half-written artifact in place."""
    if directory.exists():
        raise TrainingError(f"{directory} already exists.")
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    partial.rename(directory)


def train_classifier(
    *,
    data_path: str,
    base: str,
    name: str,
    version: str = "",
    label_names: dict[str, str] | None = None,
    limit: int | None = None,
    holdout: float = 0.2,
    seed: int = 0,
    actor: str,
    progress: Progress | None = None,
) -> ModelVersion:
    """Train a head, save it under MODEL_STORE, register a draft version evaluated on its held-out split."""
    report = progress or (lambda percent, message: None)
    report(0, "reading data")
    encoder_version, version, data = prepare(
        data_path=data_path,
        base=base,
        name=name,
        version=version,
        default_prefix="head",
        label_names=label_names,
        limit=limit,
        holdout=holdout,
        seed=seed,
    )
    index = {label: i for i, label in enumerate(data.labels)}

    encoder = encoder_for(encoder_version.source)
    texts = [e.text for e in data.train] + [e.text for e in data.validation]
    vectors = _encode(encoder, texts, lambda done: report(5 + 80 * done // len(texts), f"embedded {done}"))
    train_x, test_x = vectors[: len(data.train)], vectors[len(data.train) :]
    train_y = torch.tensor([index[e.label] for e in data.train])

    report(85, "fitting the head")
    torch.manual_seed(seed)
    layer = _fit(train_x, train_y, len(data.labels))

    with torch.inference_mode():
        predicted = [data.labels[i] for i in layer(test_x).argmax(dim=-1).tolist()]
        train_accuracy = (layer(train_x).argmax(dim=-1) == train_y).float().mean().item()
    metrics = {
        "method": "head",
        "heldout_accuracy": _accuracy(predicted, data.validation),
        "train_accuracy": round(train_accuracy, 4),
        **data.summary(),
        "seed": seed,
    }

    report(90, "saving")
    relative = Path(name) / version
    meta = {"encoder": encoder_version.source, "data_sha256": data.sha256, "metrics": metrics}
    save_atomically(settings.MODEL_STORE / relative, lambda partial: save_head(partial, layer, data.labels, meta))
    created = ModelVersion(
        name=name,
        version=version,
        task=Task.TEXT_CLASSIFICATION,
        backend=Backend.EMBEDDING_HEAD,
        source=f"store:{relative.as_posix()}",
        labels=data.labels,
        config={"encoder": encoder_version.source},
        metrics=metrics,
        notes=f"Logistic-regression head on {encoder_version} embeddings, trained on {data.path.name} "
        f"({len(data.train)} examples); held-out accuracy {metrics['heldout_accuracy']:.3f}.",
    )
    return register_trained(created, data=data, actor=actor, how="Trained a head", report=report)


def _encode(encoder, texts: list[str], report: Callable[[int], None]) -> torch.Tensor:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = torch.empty(len(texts), encoder.dimensions)
    for start in range(0, len(order), ENCODE_BATCH):
        chunk = order[start : start + ENCODE_BATCH]
        vectors[chunk] = encoder.encode([texts[i] for i in chunk])[0]
        report(start + len(chunk))
    return vectors


def _fit(x: torch.Tensor, y: torch.Tensor, classes: int) -> torch.nn.Linear:
    layer = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")
    loss_of = torch.nn.CrossEntropyLoss()

    def closure():
        optimizer.zero_grad()
        loss = loss_of(layer(x), y) + L2_PENALTY * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return layer.eval()


def _accuracy(predicted: list[str], examples: list[Example]) -> float:
    return round(sum(p == e.label for p, e in zip(predicted, examples, strict=True)) / len(examples), 4)
