from django.conf import settings
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers, booleans and objects instead of coercing them."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BoundOnce(serializers.Serializer):
    """A request body's serializer whose fields are built and bound once per class.

    DRF gives each instance a deep copy of every declared field, bound to the instance: per
    request, dozens of objects in reference cycles that only the garbage collector frees
    (gateway/api/views.py says why that matters). Validating fields keep no state between calls,
    so one set, bound to one instance made for the purpose, serves every request; the
    `validate_<field>` methods still run on the request's own instance.
    """

    @property
    def fields(self):
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            shared = serializers.Serializer.fields.func(cls())
            cls._shared_fields = shared
        return shared


class PredictRequest(BoundOnce):
    text = StrictCharField(trim_whitespace=False)
    model = StrictCharField(required=False, max_length=160, help_text="A model name, or name:version to pin one.")

    def validate_text(self, value):
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class PredictResponse(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    confidence = serializers.FloatField()
    scores = serializers.DictField(child=serializers.FloatField())
    model = serializers.CharField()
    model_version = serializers.CharField()
    variant = serializers.CharField(allow_null=True, help_text="The experiment variant that answered, if any.")
    request_id = serializers.UUIDField()
    cached = serializers.BooleanField()


class EmbeddingsRequest(BoundOnce):
    """Both embeddings endpoints' body (OpenAI's fields not named here pass through to an upstream)."""

    input = serializers.JSONField(help_text="A string or a list of strings.")
    model = StrictCharField(required=False, max_length=160)
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), required=False, default="float")

    def validate_input(self, value):
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise serializers.ValidationError("Give a non-empty string or a non-empty list of strings.")
        if len(texts) > settings.GATEWAY_MAX_EMBEDDING_INPUTS:
            raise serializers.ValidationError(f"At most {settings.GATEWAY_MAX_EMBEDDING_INPUTS} inputs per request.")
        if any(not t.strip() for t in texts):
            raise serializers.ValidationError("Inputs may not be blank.")
        return texts
