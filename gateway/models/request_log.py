import uuid

from django.db import models
from django.utils import timezone

from gateway.keys import crypto
from gateway.models.keys import APIKey, Team


class RequestLog(models.Model):
    """One row per request to a key-checked endpoint, whatever its outcome."""

    request_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    api_key = models.ForeignKey(APIKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Kept apart from the FK so the row still says which key once the key is deleted.
    key_prefix = models.CharField(max_length=crypto.PREFIX_LENGTH, blank=True)
    method = models.CharField(max_length=8)
    endpoint = models.CharField(max_length=200)
    # The model that answered (the version's name), so grouping by it counts real models; what
    # the client asked for is client input, kept apart and truncated.
    model_name = models.CharField(max_length=100, blank=True)
    requested_model = models.CharField(max_length=100, blank=True)
    model_version = models.ForeignKey(
        "inference.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.CharField(max_length=50, blank=True)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=50, blank=True)
    latency_ms = models.FloatField()
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    cache_hit = models.BooleanField(default=False)
    served_stale = models.BooleanField(
        default=False, help_text="Answered from the cache past its freshness because every candidate failed."
    )
    # The unit prices the cost was computed with, so later price edits do not rewrite history.
    input_price_per_1k = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    output_price_per_1k = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    price_missing = models.BooleanField(default=False, help_text="The version has no price: cost is unknown.")
    provider = models.CharField(max_length=50, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Upstream attempts, retries included.")
    route = models.JSONField(default=list, blank=True, help_text="Versions tried, in order, with their outcome.")
    fallback_used = models.BooleanField(default=False)
    routing_rule = models.CharField(max_length=100, blank=True)
    ttft_ms = models.FloatField("time to first token (ms)", null=True, blank=True)
    truncated = models.BooleanField(default=False, help_text="A stream that broke after its first byte.")
    usage_estimated = models.BooleanField(
        default=False, help_text="The upstream reported no token usage; the counts are estimates."
    )
    # What the answer would have cost without the cache (cache hits only).
    cost_saved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    # The team billed at the time: budgets are rebuilt from these rows.
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    input_text = models.TextField(blank=True, help_text="Stored only when GATEWAY_LOG_REQUEST_TEXT is on.")
    output_label = models.CharField(max_length=100, blank=True, help_text="The label a classifier answered.")
    # A/B experiments (experiments app): which experiment and variant served the request,
    # and a digest of its unit (X-User-ID or the key) so statistics can count units.
    experiment = models.ForeignKey(
        "experiments.Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    variant = models.CharField(max_length=50, blank=True)
    unit = models.CharField(max_length=32, blank=True)
    filtered = models.JSONField(
        default=dict,
        blank=True,
        help_text="Content filter matches in the answer and the stored texts, by detector (never the text).",
    )
    shadow_of = models.UUIDField(
        null=True, blank=True, help_text="Set on a shadow answer: the request it mirrored. Never returned."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"], name="requestlog_time"),
            models.Index(fields=["api_key", "created_at"], name="requestlog_key_time"),
            models.Index(fields=["model_version", "created_at"], name="requestlog_version_time"),
            # Only experiment traffic is indexed: statistics read these rows, nothing else does.
            models.Index(
                fields=["experiment", "variant"],
                name="requestlog_experiment_variant",
                condition=models.Q(experiment__isnull=False),
            ),
            models.Index(fields=["team", "created_at"], name="requestlog_team_time"),
        ]

    def __str__(self):
        return f"{self.request_id} {self.method} {self.endpoint} {self.status_code}"
