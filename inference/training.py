"""Versions from data: a classification head trained on a registered encoder's frozen embeddings.

Logistic regression (one linear layer, L2-regularised, fitted with L-BFGS) on the unit
sentence embeddings. The encoder is shared with the versions already serving it, so a
trained head costs one small matrix product per batch on top of the embedding.
"""

import hashlib
import os
import random
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
from inference.models import Backend, ModelVersion, Status, Task
from inference.services import model_version_register

# Inputs per forward pass while embedding the training set, sorted by length so
# each batch pads little (../shared/MEASUREMENTS.md: sorting alone gave 1.9x).
ENCODE_BATCH = 64
L2_PENALTY = 1e-4
LBFGS_STEPS = 200

Progress = Callable[[int, str], None]


class TrainingError(Exception):
    """The data or the request cannot produce a version; the message says why."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_examples(path: Path, label_names: dict[str, str] | None = None) -> list[Example]:
    """A TSV with a header line, the text in the first column and the label in the last.

    Split on tabs only, no CSV quoting: sentences may contain quote characters.
    """
    label_names = label_names or {}
    examples = []
    with path.open(encoding="utf-8") as handle:
        header = handle.readline()
        if "\t" not in header:
            raise TrainingError(f"{path}: the first line must be a tab-separated header, e.g. 'sentence<TAB>label'.")
        for number, line in enumerate(handle, start=2):
            if not line.strip():
                continue
            columns = line.rstrip("\r\n").split("\t")
            text, label = columns[0].strip(), columns[-1].strip()
            if len(columns) < 2 or not text or not label:
                raise TrainingError(f"{path}, line {number}: expected a text and a label separated by a tab.")
            examples.append(Example(text, label_names.get(label, label)))
    return examples


def split(examples: list[Example], *, holdout: float, limit: int | None, seed: int) -> tuple[list, list]:
    if not 0 < holdout < 1:
        raise TrainingError("The held-out share must be between 0 and 1.")
    examples = list(examples)
    random.Random(seed).shuffle(examples)
    if limit:
        examples = examples[:limit]
    held = round(len(examples) * holdout)
    train, test = examples[held:], examples[:held]
    if not test or len({e.label for e in train}) < 2:
        raise TrainingError(
            f"{len(examples)} examples are too few: need a held-out split and at least two labels to train on."
        )
    return train, test


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
    """Train a head, evaluate it on a held-out split, save it under MODEL_STORE, register a draft version."""
    report = progress or (lambda percent, message: None)
    path = Path(data_path)
    if not path.is_file():
        raise TrainingError(f"No file at {data_path}.")
    encoder_version = registry.resolve(base, task=Task.EMBEDDINGS)
    if encoder_version is None or encoder_version.backend != Backend.TRANSFORMERS:
        raise TrainingError(f"'{base}' is not a served embeddings version to train on.")
    version = version or f"head-{timezone.now():%Y%m%d-%H%M%S}"
    if ModelVersion.objects.filter(name=name, version=version).exists():
        raise TrainingError(f"{name}:{version} already exists.")

    report(0, "reading data")
    data_sha256 = file_sha256(path)
    train, test = split(read_examples(path, label_names), holdout=holdout, limit=limit, seed=seed)
    labels = sorted({e.label for e in train})
    index = {label: i for i, label in enumerate(labels)}

    encoder = encoder_for(encoder_version.source)
    texts = [e.text for e in train] + [e.text for e in test]
    vectors = _encode(encoder, texts, lambda done: report(5 + 85 * done // len(texts), f"embedded {done}"))
    train_x, test_x = vectors[: len(train)], vectors[len(train) :]
    train_y = torch.tensor([index[e.label] for e in train])

    report(90, "fitting the head")
    torch.manual_seed(seed)
    layer = _fit(train_x, train_y, len(labels))

    with torch.inference_mode():
        predicted = [labels[i] for i in layer(test_x).argmax(dim=-1).tolist()]
        train_accuracy = (layer(train_x).argmax(dim=-1) == train_y).float().mean().item()
    majority = Counter(e.label for e in train).most_common(1)[0][0]
    metrics = {
        "heldout_accuracy": _accuracy(predicted, test),
        "majority_baseline": _accuracy([majority] * len(test), test),
        "train_accuracy": round(train_accuracy, 4),
        "train_examples": len(train),
        "heldout_examples": len(test),
        "label_counts": dict(Counter(e.label for e in train + test)),
        "seed": seed,
    }

    report(95, "saving")
    relative = Path(name) / version
    _save_atomically(
        settings.MODEL_STORE / relative,
        layer,
        labels,
        {"encoder": encoder_version.source, "data_sha256": data_sha256, "metrics": metrics},
    )
    created = model_version_register(
        version=ModelVersion(
            name=name,
            version=version,
            task=Task.TEXT_CLASSIFICATION,
            backend=Backend.EMBEDDING_HEAD,
            source=f"store:{relative.as_posix()}",
            status=Status.DRAFT,
            labels=labels,
            config={"encoder": encoder_version.source},
            metrics=metrics,
            data_sha256=data_sha256,
            notes=f"Logistic-regression head on {encoder_version} embeddings, trained on {path.name} "
            f"({len(train)} examples); held-out accuracy {metrics['heldout_accuracy']:.3f}.",
        ),
        actor=actor,
        message=f"Trained from {path} (sha256 {data_sha256[:12]}…): held-out accuracy "
        f"{metrics['heldout_accuracy']:.3f} vs majority baseline {metrics['majority_baseline']:.3f}.",
    )
    report(100, f"registered {created} as a draft")
    return created


def _encode(encoder, texts: list[str], report: Callable[[int], None]) -> torch.Tensor:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = torch.empty(len(texts), encoder.model.config.hidden_size)
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


def _save_atomically(directory: Path, layer, labels, meta) -> None:
    """Write beside the target and rename, so a crash never leaves a half-written artifact in place."""
    if directory.exists():
        raise TrainingError(f"{directory} already exists.")
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    save_head(partial, layer, labels, meta)
    partial.rename(directory)
