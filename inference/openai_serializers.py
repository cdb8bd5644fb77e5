"""Validation of OpenAI-shaped request bodies. Fields not named here are checked against the
provider's allowlist (inference/runners/upstream.py) before they pass through."""

from django.conf import settings
from rest_framework import serializers

from inference.serializers import BoundOnce, StrictCharField

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


# The body goes upstream as sent, and the gateway reads these fields from it (estimates, cache
# keys, routing rules): a number or flag sent as a string would pass DRF's coercing fields here
# and break there. So these take JSON numbers and booleans only.
class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class MessageSerializer(BoundOnce):
    role = serializers.ChoiceField(choices=ROLES)
    content = serializers.JSONField(required=False, allow_null=True)

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            text = value or ""
        elif isinstance(value, list) and all(isinstance(part, dict) for part in value):
            text = "".join(part["text"] for part in value if isinstance(part.get("text"), str))
        else:
            raise serializers.ValidationError("Content is a string or a list of content parts.")
        if len(text) > settings.GATEWAY_CHAT_MAX_MESSAGE_CHARS:
            raise serializers.ValidationError(
                f"Ensure a message has no more than {settings.GATEWAY_CHAT_MAX_MESSAGE_CHARS} characters."
            )
        return value


class ChatCompletionRequest(BoundOnce):
    model = StrictCharField(required=False, max_length=160)
    messages = MessageSerializer(many=True, allow_empty=False)
    stream = StrictBooleanField(required=False, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    max_tokens = StrictIntegerField(required=False, min_value=1, allow_null=True)
    max_completion_tokens = StrictIntegerField(required=False, min_value=1, allow_null=True)
    temperature = StrictFloatField(required=False, min_value=0, max_value=2, allow_null=True)
    n = StrictIntegerField(required=False, min_value=1, max_value=8, allow_null=True)

    def to_internal_value(self, data):
        # Counted before each message is validated: validating tens of thousands costs seconds.
        messages = data.get("messages") if isinstance(data, dict) else None
        if isinstance(messages, list) and len(messages) > settings.GATEWAY_CHAT_MAX_MESSAGES:
            raise serializers.ValidationError(
                {"messages": [f"Ensure there are no more than {settings.GATEWAY_CHAT_MAX_MESSAGES} messages."]}
            )
        return super().to_internal_value(data)

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


# The answers' shapes, for the OpenAPI schema: OpenAI's, of which the gateway relies on these fields.
