import unicodedata

import torch
from transformers import AutoModel, AutoTokenizer

from inference.backends.base import Output
from inference.backends.traced import forward_without_gil

# Longest input the attention of BERT-sized encoders handles; longer inputs are truncated.
MAX_TOKENS = 512


def most_tokens(text: str) -> int:
    """An upper bound on the tokens a BERT-style encoder makes of `text`, without tokenizing.

    WordPiece makes at most one token per character of the NFD-normalized text (what the
    tokenizer sees), plus [CLS] and [SEP]; longer inputs are truncated at MAX_TOKENS.
    """
    return min(len(unicodedata.normalize("NFD", text)) + 2, MAX_TOKENS)


class TextEncoder:
    """Sentence embeddings from any transformers encoder: mean pooling, unit length."""

    def __init__(self, path: str):
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_length = min(self.tokenizer.model_max_length, MAX_TOKENS)
        self._forward = forward_without_gil(self.model, self.tokenizer, "last_hidden_state")

    def encode(self, texts) -> tuple[torch.Tensor, list[int]]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._forward(batch["input_ids"], batch["attention_mask"])
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1), batch["attention_mask"].sum(dim=1).tolist()


class Embedder:
    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder

    def __call__(self, texts) -> list[Output]:
        vectors, token_counts = self.encoder.encode(texts)
        return [
            Output(result={"embedding": vector}, input_tokens=count)
            for vector, count in zip(vectors.tolist(), token_counts, strict=True)
        ]
