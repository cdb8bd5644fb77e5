"""The embeddings service behind both embeddings endpoints (/api/v1/embeddings and OpenAI's
/v1/embeddings): vectors from a local model or an upstream, with the input's tokens."""

import json
from dataclasses import dataclass

from gateway.record.context import RequestContext
from inference import pipeline
from inference.models import ModelVersion


@dataclass(frozen=True)
class Embeddings:
    version: ModelVersion
    vectors: list[list[float]]
    prompt_tokens: int


def embed(ctx: RequestContext, call: pipeline.Call) -> Embeddings:
    answer = pipeline.answer(ctx, call)
    if isinstance(answer.result, bytes):
        data = json.loads(answer.result)
        vectors = [item["embedding"] for item in sorted(data["data"], key=lambda item: item["index"])]
        return Embeddings(answer.version, vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0))
    # The input's tokens, also on a cache hit (where the log row counts none: nothing ran).
    return Embeddings(
        answer.version,
        [output.result["embedding"] for output in answer.result],
        sum(output.input_tokens for output in answer.result),
    )
