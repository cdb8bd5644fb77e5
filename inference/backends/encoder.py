import unicodedata

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from inference.backends.base import Output
from inference.backends.runtimes import forward_for
from inference.models import Runtime

# Longest input the attention of BERT-sized encoders handles; longer inputs are truncated.
MAX_TOKENS = 512


def most_tokens(text: str) -> int:
    """An upper bound on the tokens a BERT-style encoder makes of `text`, without tokenizing.

    WordPiece makes at most one token per character of the NFD-normalized text (what the
    tokenizer sees), plus [CLS] and [SEP]; longer inputs are truncated at MAX_TOKENS.
    """
    return min(len(unicodedata.normalize("NFD", text)) + 2, MAX_TOKENS)


def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The unit-length mean of each input's token vectors (padding left out)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


class TextEncoder:
    """Sentence embeddings from any transformers encoder: mean pooling, unit length; its forward
    pass on PyTorch or ONNX Runtime (`runtime`: the one it runs on, after any fallback)."""

    def __init__(self, path: str, runtime: str = Runtime.TORCH):
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.dimensions = AutoConfig.from_pretrained(path).hidden_size
        self.max_length = min(self.tokenizer.model_max_length, MAX_TOKENS)
        self.runtime, self._forward = forward_for(
            path,
            runtime,
            lambda: AutoModel.from_pretrained(path).eval(),
            self.tokenizer,
            "last_hidden_state",
            mean_pooled,
        )

    def encode(self, texts) -> tuple[torch.Tensor, list[int]]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._forward(batch["input_ids"], batch["attention_mask"])
        return mean_pooled(hidden, batch["attention_mask"]), batch["attention_mask"].sum(dim=1).tolist()


class Embedder:
    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder
        self.runtime = encoder.runtime

    def __call__(self, texts) -> list[Output]:
        vectors, token_counts = self.encoder.encode(texts)
        return [
            Output(result={"embedding": vector}, input_tokens=count)
            for vector, count in zip(vectors.tolist(), token_counts, strict=True)
        ]
