"""The gateway's own prediction endpoints; each validates, runs the pipeline, and shapes the answer."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from gateway.api.views import LeanAPIView
from inference import embeddings, pipeline
from inference.models import Task
from inference.serializers import EmbeddingsRequest, PredictRequest, PredictResponse


class PredictView(LeanAPIView):
    scope = "predict"

    @extend_schema(request=PredictRequest, responses=PredictResponse)
    def post(self, request):
        params = PredictRequest(data=request.data)
        params.is_valid(raise_exception=True)
        call = call_of(request, Task.TEXT_CLASSIFICATION, [params.validated_data["text"]], params.validated_data)
        answer = pipeline.answer(request.ctx, call)
        return Response(
            {
                **answer.result[0].result,
                "model": answer.version.name,
                "model_version": answer.version.version,
                "variant": request.ctx.variant or None,
                "request_id": str(request.ctx.request_id),
                "cached": request.ctx.cache_hit,
            }
        )


class EmbeddingsView(LeanAPIView):
    scope = "embeddings"

    @extend_schema(request=EmbeddingsRequest)
    def post(self, request):
        params = EmbeddingsRequest(data=request.data)
        params.is_valid(raise_exception=True)
        ctx = request.ctx
        texts = params.validated_data["input"]
        result = embeddings.embed(
            ctx, call_of(request, Task.EMBEDDINGS, texts, params.validated_data, {"input": texts})
        )
        return Response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(result.vectors)
                ],
                "model": result.version.name,
                "model_version": result.version.version,
                "variant": ctx.variant or None,
                "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
                "request_id": str(ctx.request_id),
                "cached": ctx.cache_hit,
            }
        )


def call_of(request, task: str, texts: list[str], params: dict, body: dict | None = None) -> pipeline.Call:
    """The pipeline's view of a request: the model asked for (else the task's default), the
    experiment unit the caller names (X-User-ID; without it the API key is the unit) and the
    client's Cache-Control (no-cache skips the cache's lookup, no-store its store)."""
    model_ref = params.get("model") or pipeline.default_model(task)
    return pipeline.Call(
        task=task,
        model_ref=model_ref,
        texts=texts,
        body={**(body or {}), "model": model_ref},
        user_id=request.headers.get("X-User-ID", "").strip() or None,
        cache_control=request.headers.get("Cache-Control", ""),
    )
