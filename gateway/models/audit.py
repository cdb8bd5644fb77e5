from django.db import models
from django.utils import timezone


class AuditAction(models.TextChoices):
    REGISTER = "register", "Registered"
    PROMOTE = "promote", "Promoted"
    DEMOTE = "demote", "Stepped down to staging"
    ARCHIVE = "archive", "Archived"
    START = "start", "Experiment started"
    PAUSE = "pause", "Experiment paused"
    STOP = "stop", "Experiment stopped"
    WEIGHTS = "weights", "Weights or coverage changed"
    GUARDRAIL = "guardrail", "Paused by guardrail"
    KEY_CREATE = "key-create", "API key created"
    KEY_REVOKE = "key-revoke", "API key revoked"


class AuditEvent(models.Model):
    """Who changed what in a model's or an API key's life cycle, and when; shown on each version,
    experiment and key."""

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # A username, or what acted on its own ("guardrail", "trainclassifier"); a string so the
    # record outlives the user.
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    model_version = models.ForeignKey(
        "inference.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    experiment = models.ForeignKey(
        "experiments.Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    api_key = models.ForeignKey(
        "gateway.APIKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    message = models.TextField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor}: {self.get_action_display()}"
