import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from inference.backends.base import Output
from inference.backends.encoder import MAX_TOKENS, TextEncoder
from inference.backends.runtimes import forward_for
from inference.models import Runtime


def label_outputs(probabilities: torch.Tensor, labels: list[str], token_counts: list[int]) -> list[Output]:
    outputs = []
    for row, count in zip(probabilities.tolist(), token_counts, strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        outputs.append(
            Output(
                result={
                    "label": labels[best],
                    "confidence": row[best],
                    "scores": dict(zip(labels, row, strict=True)),
                },
                input_tokens=count,
            )
        )
    return outputs


class SequenceClassifier:
    """Any AutoModelForSequenceClassification directory or hub id."""

    def __init__(self, path: str, labels: list[str], runtime: str = Runtime.TORCH):
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        config = AutoConfig.from_pretrained(path)
        own = [config.id2label[i] for i in range(config.num_labels)]
        if labels and len(labels) != len(own):
            raise ValueError(f"The version lists {len(labels)} labels but the model has {len(own)}.")
        self.labels = labels or own
        self.max_length = min(self.tokenizer.model_max_length, MAX_TOKENS)
        self.runtime, self._forward = forward_for(
            path,
            runtime,
            lambda: AutoModelForSequenceClassification.from_pretrained(path).eval(),
            self.tokenizer,
            "logits",
            lambda logits, attention_mask: logits.softmax(dim=-1),
        )

    def __call__(self, texts) -> list[Output]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            logits = self._forward(batch["input_ids"], batch["attention_mask"])
        return label_outputs(logits.softmax(dim=-1), self.labels, batch["attention_mask"].sum(dim=1).tolist())


class ZeroShotClassifier:
    """Classifies by cosine similarity to the mean embedding of each label's example texts.

    Lets an embedding model serve as a classifier with no training: the default
    sentiment version works offline out of the box.
    """

    def __init__(self, encoder: TextEncoder, prototypes: dict[str, list[str]], temperature: float):
        self.encoder = encoder
        self.runtime = encoder.runtime
        self.labels = list(prototypes)
        self.temperature = temperature
        centroids = torch.stack([encoder.encode(texts)[0].mean(dim=0) for texts in prototypes.values()])
        self.centroids = torch.nn.functional.normalize(centroids, dim=-1)

    def __call__(self, texts) -> list[Output]:
        vectors, token_counts = self.encoder.encode(texts)
        probabilities = (vectors @ self.centroids.T / self.temperature).softmax(dim=-1)
        return label_outputs(probabilities, self.labels, token_counts)
