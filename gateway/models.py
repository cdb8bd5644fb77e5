import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from gateway import key_crypto, snapshot

# Endpoint scopes a key may be limited to; views declare theirs as `scope`.
ENDPOINT_SCOPES = ("predict", "embeddings", "chat", "batches")


def _validate_scopes(value):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('Enter a list of names, e.g. ["predict"].')


def _validate_endpoint_scopes(value):
    _validate_scopes(value)
    unknown = sorted(set(value) - set(ENDPOINT_SCOPES))
    if unknown:
        raise ValidationError(f"Unknown endpoints {unknown}; choose from {list(ENDPOINT_SCOPES)}.")


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Day (UTC)"
    WEEK = "week", "Week (from Monday, UTC)"
    MONTH = "month", "Calendar month (UTC)"


class LimitsAndBudget(models.Model):
    """What teams and keys both carry: rate limits and a spend cap.

    Empty rate limits fall back (key -> its team -> the global default); budgets do not:
    a key's budget and its team's budget are separate caps and a request must fit both.
    """

    requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Empty: the team's, else the global default.",
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Input + output tokens per minute. Empty: the team's, else the global default.",
    )
    budget_usd = models.DecimalField(
        "budget (USD)",
        max_digits=14,
        decimal_places=8,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Spend cap per budget period. Empty: no cap.",
    )
    budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTH)
    budget_alert_percent = models.PositiveSmallIntegerField(
        "alert at (% of budget)",
        default=80,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Spend past this share of the budget raises an alert once per period.",
    )
    # Budget counters in Redis are named after this, so a saved change (of cap, period…) starts
    # from a fresh count rebuilt from the request log (see gateway/budgets.py).
    updated_at = models.DateTimeField(auto_now=True, editable=False)

    class Meta:
        abstract = True


class Team(LimitsAndBudget):
    """A tenant: its keys share its budget and inherit its rate limits."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class APIKeyManager(models.Manager):
    def create_key(self, **fields) -> tuple["APIKey", str]:
        """Create a key; the plaintext is returned here once and stored nowhere."""
        key = self.model(**fields)
        full_key = key.set_new_secret()
        key.save(force_insert=True)
        return key, full_key

    def get_from_key(self, parsed: key_crypto.ParsedKey) -> "APIKey | None":
        """The row a parsed key belongs to, whatever its state; None if unknown or wrong secret."""
        # The team comes in the same query: limits and budgets need it on every request.
        key = snapshot.read(
            ("api_key", parsed.prefix), lambda: self.select_related("team").filter(prefix=parsed.prefix).first()
        )
        if key is None or not key_crypto.secret_matches(parsed.secret, key.hashed_secret):
            return None
        return key


class APIKey(LimitsAndBudget):
    name = models.CharField(max_length=100)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="api_keys")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys"
    )
    prefix = models.CharField(max_length=key_crypto.PREFIX_LENGTH, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True, help_text="Untick to suspend the key; tick again to resume.")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    allowed_endpoints = models.JSONField(
        default=list,
        blank=True,
        validators=[_validate_endpoint_scopes],
        help_text=f"Endpoints this key may call, from {list(ENDPOINT_SCOPES)}. Empty: all.",
    )
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        validators=[_validate_scopes],
        help_text='Model names this key may call, e.g. ["sentiment"]. Empty: all.',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = APIKeyManager()

    class Meta(LimitsAndBudget.Meta):
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} (gw_{self.prefix}…)"

    def set_new_secret(self) -> str:
        full_key, self.prefix, self.hashed_secret = key_crypto.generate()
        return full_key

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def refusal_reason(self, now=None) -> str | None:
        """Why this key may not be used now, or None if it may."""
        now = now or timezone.now()
        if self.is_revoked:
            return "This API key has been revoked."
        if not self.is_active:
            return "This API key is inactive."
        if self.expires_at is not None and self.expires_at <= now:
            return "This API key has expired."
        return None

    def allows_endpoint(self, scope: str) -> bool:
        return not self.allowed_endpoints or scope in self.allowed_endpoints

    def allows_model(self, model_name: str) -> bool:
        return not self.allowed_models or model_name in self.allowed_models

    def effective_limit(self, field: str) -> int | None:
        """The key's own rate limit, else its team's, else the global default (None: unlimited)."""
        for value in (getattr(self, field), getattr(self.team, field, None)):
            if value is not None:
                return value
        return settings.GATEWAY_DEFAULT_LIMITS.get(field) or None

    def revoke(self) -> None:
        """Revocation is final: a revoked key is never usable again."""
        if not self.is_revoked:
            self.revoked_at = timezone.now()
            self.is_active = False
            self.save(update_fields=["revoked_at", "is_active"])

    def clean(self):
        if self.is_revoked and self.is_active:
            raise ValidationError({"is_active": "A revoked key cannot be reactivated; create a new key."})

    def touch(self, now=None) -> None:
        """Record use, at most one write per key per resolution window."""
        now = now or timezone.now()
        cutoff = now - timezone.timedelta(seconds=settings.GATEWAY_KEY_LAST_USED_RESOLUTION_S)
        if self.last_used_at is None or self.last_used_at < cutoff:
            APIKey.objects.filter(pk=self.pk).filter(
                models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=cutoff)
            ).update(last_used_at=now)
            self.last_used_at = now


class RequestLog(models.Model):
    """One row per request to a key-checked endpoint, whatever its outcome."""

    request_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    api_key = models.ForeignKey(APIKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Kept apart from the FK so the row still says which key once the key is deleted.
    key_prefix = models.CharField(max_length=key_crypto.PREFIX_LENGTH, blank=True)
    method = models.CharField(max_length=8)
    endpoint = models.CharField(max_length=200)
    model_name = models.CharField(max_length=100, blank=True)
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


class AuditAction(models.TextChoices):
    REGISTER = "register", "Registered"
    PROMOTE = "promote", "Promoted"
    ARCHIVE = "archive", "Archived"
    START = "start", "Experiment started"
    PAUSE = "pause", "Experiment paused"
    STOP = "stop", "Experiment stopped"
    WEIGHTS = "weights", "Weights or coverage changed"
    GUARDRAIL = "guardrail", "Paused by guardrail"


class AuditEvent(models.Model):
    """Who changed what in a model's life cycle, and when; shown on each version and experiment."""

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
    message = models.TextField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor}: {self.get_action_display()}"


class BudgetAlert(models.Model):
    """Spend crossed a key's or a team's alert threshold; one row per owner and period."""

    api_key = models.ForeignKey(APIKey, null=True, blank=True, on_delete=models.CASCADE, related_name="budget_alerts")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="budget_alerts")
    period_start = models.DateTimeField()
    threshold_percent = models.PositiveSmallIntegerField()
    budget_usd = models.DecimalField(max_digits=14, decimal_places=8)
    spent_usd = models.DecimalField(max_digits=14, decimal_places=8, help_text="Spend (with reservations) when raised.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(api_key__isnull=True) ^ models.Q(team__isnull=True), name="budgetalert_one_owner"
            ),
            models.UniqueConstraint(fields=["api_key", "period_start"], name="budgetalert_once_per_key_period"),
            models.UniqueConstraint(fields=["team", "period_start"], name="budgetalert_once_per_team_period"),
        ]

    def __str__(self):
        return f"{self.api_key or self.team}: {self.spent_usd} of {self.budget_usd} USD"
