from django.db import models

from gateway.metrics.families import LATENCY_BUCKETS_MS

# The columns a rollup row is keyed by: one row per hour and combination of these.
# To add a dimension (variant, provider...): add the same field as RequestLog's here and its
# name to this tuple; rollups.py follows it, the dashboards' pages and filters.py choose to show it.
DIMENSIONS = ("team", "api_key", "key_prefix", "model_name", "version", "status_code", "error_type", "cache_hit")
# Foreign keys among them: grouped and stored by id.
FOREIGN_KEYS = ("team", "api_key")

# Histogram columns: how many requests took at most <edge> ms (and more than the edge
# before it); the last column counts the rest. Percentiles are read from these.
LATENCY_BUCKET_COLUMNS = (*(f"latency_le_{edge}" for edge in LATENCY_BUCKETS_MS), "latency_le_inf")


class Rollup(models.Model):
    """Sums over the request log for one time bucket and one combination of DIMENSIONS."""

    start = models.DateTimeField(help_text="Start of the bucket (UTC).")
    team = models.ForeignKey("gateway.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey("gateway.APIKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    key_prefix = models.CharField(max_length=8, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    version = models.CharField(max_length=50, blank=True)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=50, blank=True)
    cache_hit = models.BooleanField(default=False)

    requests = models.PositiveIntegerField()
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    cost_saved_usd = models.DecimalField(
        max_digits=18, decimal_places=8, default=0, help_text="What the cache hits would have cost."
    )
    latency_sum_ms = models.FloatField(default=0)
    latency_max_ms = models.FloatField(default=0)
    fallbacks = models.PositiveIntegerField(default=0, help_text="Requests answered by a fallback version.")
    upstream_attempts = models.PositiveIntegerField(default=0, help_text="Upstream calls, retries included.")

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.start:%Y-%m-%d %H:%M} {self.key_prefix or '-'} {self.model_name}:{self.version}"


class HourlyRollup(Rollup):
    """Rebuilt from the raw rows of its hour by observability.rollups (an hour is replaced as a
    whole, so a rebuild is idempotent); the dashboards never scan the request log itself."""

    class Meta:
        # The dashboards read the rollups: who may open them is said here.
        permissions = [("view_dashboards", "Can view the usage and cost dashboards")]
        indexes = [
            models.Index(fields=["start"], name="hourlyrollup_start"),
            models.Index(fields=["key_prefix", "start"], name="hourlyrollup_key_start"),
            models.Index(fields=["model_name", "start"], name="hourlyrollup_model_start"),
        ]


class DailyRollup(Rollup):
    """Rebuilt from the day's hourly rollups: what views over weeks or months read, so their cost
    depends on the number of days and combinations, not on how many requests were made."""

    class Meta:
        indexes = [
            models.Index(fields=["start"], name="dailyrollup_start"),
            models.Index(fields=["key_prefix", "start"], name="dailyrollup_key_start"),
            models.Index(fields=["model_name", "start"], name="dailyrollup_model_start"),
        ]


for _model in (HourlyRollup, DailyRollup):
    for _column in LATENCY_BUCKET_COLUMNS:
        models.PositiveIntegerField(default=0).contribute_to_class(_model, _column)


class RollupState(models.Model):
    """The single row that says how far the rollups are final; its row lock serializes refreshes."""

    final_before = models.DateTimeField(
        null=True, help_text="Hours before this are final; later ones are rebuilt on every refresh."
    )
    refreshed_at = models.DateTimeField(null=True)

    def __str__(self):
        return f"rollups final before {self.final_before}, refreshed {self.refreshed_at}"
