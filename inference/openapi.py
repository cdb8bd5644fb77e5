"""What the API docs (/api/docs, /api/redoc, /api/schema) say beyond the views' own serializers:
the two ways to present a key, the error envelope, and the OpenAI-shaped answers of /v1/*.
These serializers describe; the views pass OpenAI's JSON through without them."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers


class APIKeyScheme(OpenApiAuthenticationExtension):
    target_class = "gateway.keys.authentication.APIKeyAuthentication"
    name = ["ApiKeyHeader", "BearerAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The original service's header."},
            {"type": "http", "scheme": "bearer", "description": "OpenAI clients' header: Bearer gw_<prefix>.<secret>."},
        ]

    def get_security_requirement(self, auto_schema):
        return [{"ApiKeyHeader": []}, {"BearerAuth": []}]  # either one


class ErrorDetail(serializers.Serializer):
    type = serializers.CharField(help_text="e.g. invalid_request, authentication_error, rate_limited, upstream_error.")
    code = serializers.CharField(help_text="The type again: OpenAI's SDKs read `code`.")
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True, help_text="The first invalid field, if any.")
    request_id = serializers.UUIDField(allow_null=True, help_text="Also in the X-Request-ID header.")
    # The metaclass pops declared fields off the class, so this never shadows Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.JSONField(),
        required=False,
        help_text="Per-field messages of a 400: a list, or for a nested field an object of the same shape.",
    )


class ErrorResponse(serializers.Serializer):
    error = ErrorDetail()


ERRORS = {
    status: OpenApiResponse(ErrorResponse, description=description)
    for status, description in {
        400: "Invalid request (see `fields`), or the upstream refused it.",
        401: "No key, a malformed or unknown key, or a revoked, inactive or expired one.",
        402: "The key's or its team's budget for the period is spent.",
        403: "The key may not call this endpoint or this model.",
        404: "No such model is served.",
        429: "Over the key's requests or tokens per minute; see Retry-After.",
        502: "Every upstream that can serve the model failed (and no stale answer was cached).",
        503: "Overloaded, or every upstream's circuit breaker is open; retry shortly.",
    }.items()
}

_usage = inline_serializer(
    "Usage",
    {
        "prompt_tokens": serializers.IntegerField(),
        "completion_tokens": serializers.IntegerField(required=False),
        "total_tokens": serializers.IntegerField(),
    },
)

_completion = inline_serializer(
    "ChatCompletion",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(default="chat.completion"),
        "created": serializers.IntegerField(),
        "model": serializers.CharField(),
        "choices": inline_serializer(
            "ChatChoice",
            {
                "index": serializers.IntegerField(),
                "message": inline_serializer(
                    "ChatMessage",
                    {
                        "role": serializers.CharField(),
                        "content": serializers.CharField(
                            allow_null=True, help_text="Filtered by the version's (or key's) output filter."
                        ),
                    },
                ),
                "finish_reason": serializers.CharField(allow_null=True),
            },
            many=True,
        ),
        "usage": _usage,
    },
)
_STREAMED = (
    "The completion; with `stream: true`, text/event-stream: one `data: {chat.completion.chunk}` event per "
    'piece of the answer, then `data: [DONE]` (a stream that breaks ends with a `data: {"error": ...}` event).'
)
CHAT_STREAM = OpenApiResponse(
    inline_serializer("ChatCompletionChunk", {"id": serializers.CharField(), "choices": serializers.ListField()}),
    description=_STREAMED,
)
CHAT = OpenApiResponse(_completion, description=_STREAMED)

OpenAIEmbeddings = inline_serializer(
    "OpenAIEmbeddings",
    {
        "object": serializers.CharField(default="list"),
        "data": inline_serializer(
            "OpenAIEmbedding",
            {
                "object": serializers.CharField(default="embedding"),
                "index": serializers.IntegerField(),
                "embedding": serializers.JSONField(help_text="Floats, or base64 little-endian float32."),
            },
            many=True,
        ),
        "model": serializers.CharField(),
        "usage": _usage,
    },
)

ModelList = inline_serializer(
    "ModelList",
    {
        "object": serializers.CharField(default="list"),
        "data": inline_serializer(
            "Model",
            {
                "id": serializers.CharField(),
                "object": serializers.CharField(default="model"),
                "created": serializers.IntegerField(),
                "owned_by": serializers.CharField(),
            },
            many=True,
        ),
    },
)

CHAT_EXAMPLES = [
    OpenApiExample(
        "Routed by the gateway",
        value={"model": "auto", "messages": [{"role": "user", "content": "Compare SQL and NoSQL databases."}]},
        request_only=True,
    )
]
