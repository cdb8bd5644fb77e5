import secrets

from django.db import models
from django.utils import timezone


def _new_salt() -> str:
    return secrets.token_hex(8)


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    STOPPED = "stopped", "Stopped"


class Experiment(models.Model):
    """A split of one model name's unpinned traffic over versions of it."""

    name = models.CharField(max_length=100, unique=True)
    model_name = models.CharField(
        max_length=100, help_text="Requests for this model name (not pinned to name:version) take part."
    )
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    salt = models.CharField(
        max_length=64,
        default=_new_salt,
        help_text="Seeds the assignment hash. Fixed once the experiment has started: a new salt reshuffles every unit.",
    )
    coverage = models.PositiveSmallIntegerField(
        default=100,
        help_text="Percent of units (users or keys) in the experiment; the rest get the production version. "
        "Raising it only adds units: those already in keep their variant.",
    )
    guardrail_enabled = models.BooleanField(
        "pause on errors",
        default=True,
        help_text="Pause the experiment when a variant's error rate is significantly above control's.",
    )
    guardrail_min_requests = models.PositiveIntegerField(
        default=100, help_text="Requests a variant must have before the guardrail judges it."
    )
    guardrail_p_value = models.FloatField(
        default=0.01, help_text="One-sided p-value below which a higher error rate counts as significant."
    )
    paused_reason = models.TextField(blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_name"],
                condition=models.Q(status="running"),
                name="experiment_one_running_per_model",
            ),
            models.CheckConstraint(condition=models.Q(coverage__lte=100), name="experiment_coverage_percent"),
        ]

    def __str__(self):
        return self.name


class VariantMode(models.TextChoices):
    LIVE = "live", "Live (answers its share of units)"
    SHADOW = "shadow", "Shadow (mirrored copy, never returned)"


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=50, help_text="Returned to callers as `variant` / X-Experiment-Variant.")
    model_version = models.ForeignKey("inference.ModelVersion", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=8, choices=VariantMode.choices, default=VariantMode.LIVE)
    weight = models.PositiveSmallIntegerField(
        default=0,
        help_text="Live: percent of the experiment's units (live weights sum to 100). "
        "Shadow: percent of the experiment's requests mirrored to it.",
    )
    is_control = models.BooleanField(default=False, help_text="The variant others are compared with (one, live).")

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="variant_unique_name"),
            models.CheckConstraint(condition=models.Q(weight__lte=100), name="variant_weight_percent"),
        ]

    def __str__(self):
        return f"{self.experiment}/{self.name}"

    @property
    def is_shadow(self) -> bool:
        return self.mode == VariantMode.SHADOW


class Feedback(models.Model):
    """The outcome of one answered request, reported by the caller that made it."""

    request = models.OneToOneField("gateway.RequestLog", on_delete=models.CASCADE, related_name="feedback")
    # The request's public id, kept here too: statistics match shadow answers to the
    # request they mirrored by this id, with an index lookup instead of a join.
    request_uuid = models.UUIDField(unique=True)
    label = models.CharField(max_length=100, blank=True, help_text="The true label, for classification.")
    score = models.FloatField(null=True, blank=True, help_text="An outcome score from 0 (bad) to 1 (good).")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        ordering = ["-created_at"]

    def __str__(self):
        return f"feedback on {self.request_uuid}"
