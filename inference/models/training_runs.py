from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import models

from inference.models.versions import ModelVersion


class TrainingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class TrainingMethod(models.TextChoices):
    HEAD = "head", "Head on the frozen encoder (minutes on CPU)"
    FINE_TUNE = "fine-tune", "Fine-tune the encoder with a head (an hour or more on CPU)"


class TrainingRun(models.Model):
    """A classifier trained from a labelled file by a Celery worker (inference.tasks)."""

    data_path = models.CharField(
        max_length=500,
        help_text="A TSV file (header line; text in the first column, label in the last), "
        "readable by the web and worker processes.",
    )
    base = models.CharField(
        max_length=160, default="embeddings", help_text="The registered encoder to train on: name or name:version."
    )
    name = models.CharField(max_length=100, help_text="Model name the new version registers under.")
    version = models.CharField(max_length=50, blank=True, help_text="Empty: one is made from the date and time.")
    label_names = models.JSONField(
        default=dict, blank=True, help_text='Rename raw labels, e.g. {"0": "NEGATIVE", "1": "POSITIVE"}.'
    )
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="Use at most this many examples.")
    holdout = models.FloatField(default=0.2, help_text="Share of examples held out for evaluation.")
    method = models.CharField(max_length=16, choices=TrainingMethod.choices, default=TrainingMethod.HEAD)
    epochs = models.PositiveSmallIntegerField(default=3, help_text="Fine-tuning: at most this many passes.")
    max_minutes = models.FloatField(
        null=True, blank=True, help_text="Fine-tuning: stop after this long and keep the best model so far."
    )
    status = models.CharField(max_length=16, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    message = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    result = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"training {self.name} from {self.data_path}"

    def clean(self):
        if not Path(self.data_path).is_file():
            raise ValidationError(
                {"data_path": f"No file at {self.data_path} (it must be readable here and by workers)."}
            )
        if not 0 < self.holdout < 1:
            raise ValidationError({"holdout": "A share between 0 and 1, e.g. 0.2."})
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValidationError({"max_minutes": "A positive number of minutes, or empty for no limit."})
