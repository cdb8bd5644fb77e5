from django.conf import settings
from rest_framework import serializers

from gateway.api import parsers
from inference.batches.models import BATCH_TASKS, ItemStatus
from inference.models import Task
from inference.serializers import StrictCharField


class BatchCreateRequest(serializers.Serializer):
    # Blank or over-long texts are accepted here and fail alone when their item runs: one bad
    # line must not refuse a job of thousands. A non-string is refused: it is no input at all.
    inputs = serializers.ListField(
        child=StrictCharField(trim_whitespace=False, allow_blank=True),
        required=False,
        allow_empty=False,
        help_text="The texts, in order.",
    )
    file = serializers.FileField(
        required=False, help_text='A JSONL upload: per line a JSON string or an object with a "text" string.'
    )
    model = StrictCharField(required=False, max_length=160, help_text="A model name, or name:version to pin one.")
    task = serializers.ChoiceField(choices=BATCH_TASKS, default=Task.TEXT_CLASSIFICATION)

    def validate(self, attrs):
        if ("inputs" in attrs) == ("file" in attrs):
            raise serializers.ValidationError(
                {"inputs": ["Give either inputs (a JSON list) or file (a JSONL upload)."]}
            )
        if "inputs" in attrs:
            field, texts = "inputs", attrs.pop("inputs")
        else:
            field, texts = "file", _texts_from_jsonl(attrs.pop("file"))
        if not texts:
            raise serializers.ValidationError({field: ["The job has no inputs."]})
        if len(texts) > settings.GATEWAY_BATCH_MAX_ITEMS:
            raise serializers.ValidationError(
                {field: [f"At most {settings.GATEWAY_BATCH_MAX_ITEMS} inputs per job; this has {len(texts)}."]}
            )
        attrs["texts"] = texts
        return attrs


def _texts_from_jsonl(upload) -> list[str]:
    texts = []
    for number, raw in enumerate(upload, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise serializers.ValidationError({"file": [f"Line {number} is not UTF-8."]}) from None
        if not line.strip():
            continue  # blank lines, e.g. a trailing newline, are no items
        try:
            value = parsers.loads(line)
        except parsers.TooDeep as exc:
            raise serializers.ValidationError({"file": [f"Line {number}: {exc}"]}) from None
        except ValueError:
            raise serializers.ValidationError({"file": [f"Line {number} is not valid JSON."]}) from None
        if isinstance(value, dict):
            value = value.get("text")
        if not isinstance(value, str):
            raise serializers.ValidationError(
                {"file": [f'Line {number}: give a JSON string or an object with a "text" string.']}
            )
        texts.append(value)
    return texts


class BatchProgress(serializers.Serializer):
    done = serializers.IntegerField(source="processed_items")
    total = serializers.IntegerField(source="total_items")
    succeeded = serializers.IntegerField(source="succeeded_items")
    failed = serializers.IntegerField(source="failed_items")


class BatchJobResponse(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    task = serializers.CharField()
    model = serializers.CharField(source="model_name")
    model_version = serializers.CharField(source="version")
    progress = BatchProgress(source="*")
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=8, help_text="Cost of the items run so far.")
    error = serializers.CharField(help_text="Why the job failed as a whole; empty otherwise.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class BatchResultResponse(serializers.Serializer):
    """One item's outcome; needs the job in the context (`{"job": job}`)."""

    index = serializers.IntegerField()
    status = serializers.SerializerMethodField(help_text="pending, succeeded, failed, or skipped (job stopped).")
    result = serializers.JSONField(allow_null=True)
    error = serializers.SerializerMethodField()

    def get_status(self, item) -> str:
        if item.status == ItemStatus.PENDING and not self.context["job"].is_active:
            return "skipped"
        return item.status

    def get_error(self, item) -> dict | None:
        return {"type": item.error_type, "message": item.error_message} if item.error_type else None


class SeedBatchResultResponse(serializers.Serializer):
    status = serializers.CharField(help_text="pending, completed, cancelled or failed.")
    results = serializers.ListField(child=serializers.DictField(), required=False)
    error = serializers.CharField(required=False)
