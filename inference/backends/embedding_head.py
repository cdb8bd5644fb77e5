"""A classification head (a linear layer, trained by inference/training.py) on a frozen encoder.

The artifact is a directory: `head.pt` (the layer's weight and bias tensors) and
`head.json` (labels in output order and how the head was made). It is loaded with
`weights_only=True`, so a tampered file cannot run code.
"""

import json
from pathlib import Path

import torch

from inference.backends.base import Output
from inference.backends.classifiers import label_outputs
from inference.backends.encoder import TextEncoder

WEIGHTS_FILE = "head.pt"
META_FILE = "head.json"


def save_head(directory: Path, layer: torch.nn.Linear, labels: list[str], meta: dict) -> None:
    directory.mkdir(parents=True)
    torch.save({"weight": layer.weight.detach().clone(), "bias": layer.bias.detach().clone()}, directory / WEIGHTS_FILE)
    (directory / META_FILE).write_text(json.dumps({**meta, "labels": labels}, indent=2))


def load_head(directory: Path) -> tuple[torch.nn.Linear, list[str]]:
    meta = json.loads((directory / META_FILE).read_text())
    state = torch.load(directory / WEIGHTS_FILE, weights_only=True)
    out_features, in_features = state["weight"].shape
    if out_features != len(meta["labels"]):
        raise ValueError(f"The head has {out_features} outputs but {len(meta['labels'])} labels.")
    layer = torch.nn.Linear(in_features, out_features)
    layer.load_state_dict(state)
    return layer.eval(), meta["labels"]


class EmbeddingHeadClassifier:
    def __init__(self, encoder: TextEncoder, path: str):
        self.encoder = encoder
        self.runtime = encoder.runtime
        self.layer, self.labels = load_head(Path(path))

    def __call__(self, texts) -> list[Output]:
        vectors, token_counts = self.encoder.encode(texts)
        with torch.inference_mode():
            probabilities = self.layer(vectors).softmax(dim=-1)
        return label_outputs(probabilities, self.labels, token_counts)
