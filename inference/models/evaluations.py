from django.db import models

from inference.models.versions import ModelVersion


class Evaluation(models.Model):
    """One measurement of a classifier version on a labelled file (evaluatemodel, or a training run's
    validation split). The headline figures are columns, to list and sort; the rest is in `report`."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    data_path = models.CharField(max_length=500)
    data_sha256 = models.CharField("data SHA-256", max_length=64)
    split = models.CharField(
        max_length=200, blank=True, help_text="Which part of the file: all of it, or a training run's validation split."
    )
    examples = models.PositiveIntegerField()
    accuracy = models.FloatField()
    macro_f1 = models.FloatField("macro F1")
    ece = models.FloatField("expected calibration error", help_text="0 is perfectly calibrated confidences.")
    throughput = models.FloatField("sentences/s", help_text="Measured on this machine, model load excluded.")
    report = models.JSONField(
        default=dict, help_text="Per-label precision/recall/F1, the confusion matrix, calibration bins, how it ran."
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.version} on {self.data_name} ({self.accuracy:.3f})"

    @property
    def data_name(self) -> str:
        return self.data_path.rsplit("/", 1)[-1] + (f" [{self.split}]" if self.split else "")
