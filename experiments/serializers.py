from rest_framework import serializers

from inference.serializers import StrictCharField


class FeedbackRequest(serializers.Serializer):
    request_id = serializers.UUIDField(help_text="The request_id of an answer this key received.")
    label = StrictCharField(required=False, max_length=100, help_text="The true label (classification).")  # type: ignore[assignment]  # a field, not Field.label
    score = serializers.FloatField(required=False, min_value=0, max_value=1, help_text="Outcome from 0 to 1.")

    def validate(self, attrs):
        if not attrs.get("label") and attrs.get("score") is None:
            raise serializers.ValidationError("Give a label, a score, or both.")
        return attrs


class FeedbackResponse(serializers.Serializer):
    request_id = serializers.UUIDField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    score = serializers.FloatField(allow_null=True)
    correct = serializers.BooleanField(allow_null=True, help_text="Whether the answer's label was the true one.")
