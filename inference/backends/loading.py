import importlib
import threading
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from inference.backends.classifiers import SequenceClassifier, ZeroShotClassifier
from inference.backends.embedding_head import EmbeddingHeadClassifier
from inference.backends.encoder import Embedder, TextEncoder
from inference.models import Backend, ModelVersion, Runtime, Task

# Zero-shot classifiers and embedding versions on the same weights and runtime share one encoder.
_encoders: dict[tuple[str, str], TextEncoder] = {}
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


def encoder_for(source: str, runtime: str = Runtime.TORCH) -> TextEncoder:
    return _encoder(resolve_source(source), runtime)


def _encoder(path: str, runtime: str) -> TextEncoder:
    with _encoders_lock:
        if (path, runtime) not in _encoders:
            _encoders[path, runtime] = TextEncoder(path, runtime)
        return _encoders[path, runtime]


def load_runner(version: ModelVersion, runtime: str | None = None) -> Callable:
    """The version's runner, on its own runtime unless `runtime` says another (e.g. torch, to
    compare against it). Its `runtime` attribute is the one it runs on, after any fallback."""
    path = resolve_source(version.source)
    runtime = runtime or version.runtime
    if version.backend == Backend.ZERO_SHOT:
        return ZeroShotClassifier(
            _encoder(path, runtime),
            version.config["prototypes"],
            float(version.config.get("temperature", DEFAULT_ZERO_SHOT_TEMPERATURE)),
        )
    if version.backend == Backend.EMBEDDING_HEAD:
        return EmbeddingHeadClassifier(encoder_for(version.config["encoder"], runtime), path)
    if version.backend == Backend.TRANSFORMERS and version.task == Task.EMBEDDINGS:
        return Embedder(_encoder(path, runtime))
    if version.backend == Backend.TRANSFORMERS and version.task == Task.TEXT_CLASSIFICATION:
        return SequenceClassifier(path, version.labels, runtime)
    raise ValueError(f"No local backend for {version.backend} / {version.task}.")
