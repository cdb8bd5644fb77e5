"""OpenAI-compatible endpoints: existing OpenAI clients work with base_url pointed here."""

import base64
import struct
import time

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import pipeline, registry
from inference.models import ModelVersion, RoutingRule, Status, Task
from inference.openai_serializers import ChatCompletionRequest, EmbeddingRequest
from inference.runners import upstream
from inference.views import cache_control_of, user_id_of


def _served_headers(ctx) -> dict:
    version = ctx.model_version
    return {"X-Model-Version": f"{version.name}:{version.version}"} if version else {}


class ChatCompletionsView(APIView):
    scope = "chat"

    def post(self, request):
        params = ChatCompletionRequest(data=request.data)
        params.is_valid(raise_exception=True)
        body = {**request.data, "model": params.validated_data.get("model") or settings.GATEWAY_DEFAULT_CHAT}
        ctx = request.ctx
        user_id = user_id_of(request)
        if params.validated_data["stream"]:
            events = upstream.chat_stream(ctx, body, prompt=params.prompt_text(), user_id=user_id)
            response = StreamingHttpResponse(events, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # let proxies pass each event at once
        else:
            answer = upstream.chat(
                ctx, body, prompt=params.prompt_text(), user_id=user_id, cache_control=cache_control_of(request)
            )
            response = HttpResponse(answer, content_type="application/json")
        for name, value in _served_headers(ctx).items():
            response[name] = value
        return response


class EmbeddingsView(APIView):
    scope = "embeddings"

    def post(self, request):
        params = EmbeddingRequest(data=request.data)
        params.is_valid(raise_exception=True)
        model_ref = params.validated_data.get("model") or settings.GATEWAY_DEFAULT_EMBEDDINGS
        ctx = request.ctx
        version = registry.resolve(model_ref, task=Task.EMBEDDINGS)
        user_id = user_id_of(request)
        if version is not None and not version.is_local:
            body = {**request.data, "model": model_ref}
            answer = upstream.remote_embeddings(ctx, body, user_id=user_id, cache_control=cache_control_of(request))
            return HttpResponse(answer, content_type="application/json", headers=_served_headers(ctx))
        version, outputs = pipeline.embed(
            ctx=ctx,
            texts=params.validated_data["input"],
            model_ref=model_ref,
            user_id=user_id,
            cache_control=cache_control_of(request),
        )
        encode = _base64 if params.validated_data["encoding_format"] == "base64" else list
        tokens = sum(out.input_tokens for out in outputs)  # also on a cache hit, where nothing ran
        return Response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": encode(out.result["embedding"])}
                    for i, out in enumerate(outputs)
                ],
                "model": version.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers=_served_headers(ctx),
        )


class ModelsView(APIView):
    """The model names this key may call."""

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
