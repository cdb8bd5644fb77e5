"""Validation of OpenAI-shaped request bodies; fields not named here pass through untouched."""

from rest_framework import serializers

from inference.serializers import StrictCharField

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = serializers.JSONField(required=False, allow_null=True)

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(part, dict) for part in value):
            return value
        raise serializers.ValidationError("Content is a string or a list of content parts.")


class ChatCompletionRequest(serializers.Serializer):
    model = StrictCharField(required=False, max_length=160)
    messages = MessageSerializer(many=True, allow_empty=False)
    stream = serializers.BooleanField(required=False, default=False)
    max_tokens = serializers.IntegerField(required=False, min_value=1, allow_null=True)
    max_completion_tokens = serializers.IntegerField(required=False, min_value=1, allow_null=True)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2, allow_null=True)
    n = serializers.IntegerField(required=False, min_value=1, max_value=8, allow_null=True)

    def prompt_text(self) -> str:
        """The text of the messages, which routing rules match on."""
        parts = []
        for message in self.validated_data["messages"]:
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(part.get("text", "") for part in content if isinstance(part.get("text"), str))
        return "\n".join(parts)
