from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import pipeline
from inference.serializers import EmbeddingsRequest, PredictRequest, PredictResponse


class PredictView(APIView):
    scope = "predict"

    @extend_schema(request=PredictRequest, responses=PredictResponse)
    def post(self, request):
        params = PredictRequest(data=request.data)
        params.is_valid(raise_exception=True)
        version, result = pipeline.classify(
            ctx=request.ctx,
            text=params.validated_data["text"],
            model_ref=params.validated_data.get("model"),
            user_id=user_id_of(request),
            cache_control=cache_control_of(request),
        )
        return Response(
            {
                **result,
                "model": version.name,
                "model_version": version.version,
                "variant": request.ctx.variant or None,
                "request_id": str(request.ctx.request_id),
                "cached": request.ctx.cache_hit,
            }
        )


class EmbeddingsView(APIView):
    scope = "embeddings"

    @extend_schema(request=EmbeddingsRequest)
    def post(self, request):
        params = EmbeddingsRequest(data=request.data)
        params.is_valid(raise_exception=True)
        ctx = request.ctx
        version, outputs = pipeline.embed(
            ctx=ctx,
            texts=params.validated_data["input"],
            model_ref=params.validated_data.get("model"),
            user_id=user_id_of(request),
            cache_control=cache_control_of(request),
        )
        # The input's tokens, also on a cache hit (where the log row counts none: nothing ran).
        tokens = sum(out.input_tokens for out in outputs)
        return Response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": out.result["embedding"]}
                    for i, out in enumerate(outputs)
                ],
                "model": version.name,
                "model_version": version.version,
                "variant": ctx.variant or None,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "request_id": str(ctx.request_id),
                "cached": ctx.cache_hit,
            }
        )


def user_id_of(request) -> str | None:
    """The experiment unit the caller names (X-User-ID); without it, the API key is the unit."""
    return request.headers.get("X-User-ID", "").strip() or None


def cache_control_of(request) -> str:
    """The client's Cache-Control (no-cache skips the response cache's lookup, no-store its store)."""
    return request.headers.get("Cache-Control", "")
