import importlib
import threading
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from inference.backends.classifiers import SequenceClassifier, ZeroShotClassifier
from inference.backends.embedding_head import EmbeddingHeadClassifier
from inference.backends.encoder import Embedder, TextEncoder
from inference.models import Backend, ModelVersion, Task

# Zero-shot classifiers and embedding versions on the same weights share one encoder.
_encoders: dict[str, TextEncoder] = {}
_encoders_lock = threading.Lock()

DEFAULT_ZERO_SHOT_TEMPERATURE = 0.05

# Small trained artifacts shipped in the repository (the default sentiment head).
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def resolve_source(source: str) -> str:
    """A model directory or hub id; `pkg:<module>` names a pip package exposing get_model_path();
    `store:<path>` is a directory under MODEL_STORE (where trainclassifier saves);
    `artifact:<name>` is a directory under inference/artifacts/ (shipped with the code)."""
    if source.startswith("pkg:"):
        return str(importlib.import_module(source.removeprefix("pkg:")).get_model_path())
    if source.startswith("store:"):
        return str(settings.MODEL_STORE / source.removeprefix("store:"))
    if source.startswith("artifact:"):
        return str(ARTIFACTS / source.removeprefix("artifact:"))
    return source


def encoder_for(source: str) -> TextEncoder:
    return _encoder(resolve_source(source))


def _encoder(path: str) -> TextEncoder:
    with _encoders_lock:
        if path not in _encoders:
            _encoders[path] = TextEncoder(path)
        return _encoders[path]


def load_runner(version: ModelVersion) -> Callable:
    path = resolve_source(version.source)
    if version.backend == Backend.ZERO_SHOT:
        return ZeroShotClassifier(
            _encoder(path),
            version.config["prototypes"],
            float(version.config.get("temperature", DEFAULT_ZERO_SHOT_TEMPERATURE)),
        )
    if version.backend == Backend.EMBEDDING_HEAD:
        return EmbeddingHeadClassifier(encoder_for(version.config["encoder"]), path)
    if version.backend == Backend.TRANSFORMERS and version.task == Task.EMBEDDINGS:
        return Embedder(_encoder(path))
    if version.backend == Backend.TRANSFORMERS and version.task == Task.TEXT_CLASSIFICATION:
        return SequenceClassifier(path, version.labels)
    raise ValueError(f"No local backend for {version.backend} / {version.task}.")
