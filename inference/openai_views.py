"""OpenAI-compatible endpoints: existing OpenAI clients work with base_url pointed here."""

import base64
import struct
import time

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from gateway.api.views import LeanAPIView
from inference import embeddings, openapi, pipeline
from inference.models import ModelVersion, RoutingRule, Status, Task
from inference.openai_serializers import (
    ChatCompletionRequest,
)
from inference.serializers import EmbeddingsRequest
from inference.views import call_of

_TAGS = ["OpenAI-compatible"]


def _served_headers(ctx) -> dict:
    version = ctx.model_version
    return {"X-Model-Version": f"{version.name}:{version.version}"} if version else {}


class ChatCompletionsView(LeanAPIView):
    scope = "chat"

    @extend_schema(
        tags=_TAGS,
        summary="Chat completion",
        description="OpenAI's chat completions: point an OpenAI SDK's base_url at /v1. `model` is a served "
        "name (or name:version), or `auto` for the routing rules. Answers pass the output filter; a repeated "
        "deterministic call may be answered from the cache (X-Cache: hit), or, when every upstream fails, "
        "from a stale cached answer (X-Cache: stale).",
        request=ChatCompletionRequest,
        responses={
            (200, "application/json"): openapi.CHAT,
            (200, "text/event-stream"): openapi.CHAT_STREAM,
            **openapi.ERRORS,
        },
        examples=openapi.CHAT_EXAMPLES,
    )
    def post(self, request):
        params = ChatCompletionRequest(data=request.data)
        params.is_valid(raise_exception=True)
        ctx = request.ctx
        call = call_of(request, Task.CHAT, [params.prompt_text()], params.validated_data, request.data)
        if params.validated_data["stream"]:
            response = StreamingHttpResponse(pipeline.stream(ctx, call), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # let proxies pass each event at once
        else:
            response = HttpResponse(pipeline.answer(ctx, call).result, content_type="application/json")
        for name, value in _served_headers(ctx).items():
            response[name] = value
        return response


class EmbeddingsView(LeanAPIView):
    scope = "embeddings"

    @extend_schema(
        tags=_TAGS,
        summary="Embeddings",
        request=EmbeddingsRequest,
        responses={200: openapi.OpenAIEmbeddings, **openapi.ERRORS},
    )
    def post(self, request):
        params = EmbeddingsRequest(data=request.data)
        params.is_valid(raise_exception=True)
        texts = params.validated_data["input"]
        # The upstream is asked for floats: the gateway encodes them as the client asked.
        body = {**{k: v for k, v in request.data.items() if k != "encoding_format"}, "input": texts}
        result = embeddings.embed(request.ctx, call_of(request, Task.EMBEDDINGS, texts, params.validated_data, body))
        encode = _base64 if params.validated_data["encoding_format"] == "base64" else list
        return Response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": encode(vector)}
                    for i, vector in enumerate(result.vectors)
                ],
                "model": result.version.name,
                "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
            },
            headers=_served_headers(request.ctx),
        )


class ModelsView(LeanAPIView):
    """The model names this key may call."""

    @extend_schema(
        tags=_TAGS, summary="Models this key may call", responses={200: openapi.ModelList, 401: openapi.ERRORS[401]}
    )
    def get(self, request):
        names = set(ModelVersion.objects.filter(status=Status.PRODUCTION).values_list("name", flat=True)) | set(
            RoutingRule.objects.filter(enabled=True).values_list("model_name", flat=True)
        )
        created = int(time.time())
        return Response(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": created, "owned_by": "gateway"}
                    for name in sorted(names)
                    if request.auth.allows_model(name)
                ],
            }
        )


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32 (its SDK asks for it by default)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
