from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import InterfaceError, OperationalError, models
from django.utils import timezone

from gateway import db
from gateway.caching import snapshot
from gateway.filters.modes import FilterMode
from gateway.keys import crypto
from inference.models import Status

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
    max_in_flight = models.PositiveIntegerField(
        "requests in flight",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Requests answered at once; more are refused with 429. Empty: the team's, else the global default.",
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
    # from a fresh count rebuilt from the request log (see gateway/limits/budgets.py).
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


class APIKeyManager(models.Manager["APIKey"]):
    def create_key(self, **fields) -> tuple["APIKey", str]:
        """Create a key; the plaintext is returned here once and stored nowhere."""
        key = self.model(**fields)
        full_key = key.set_new_secret()
        key.save(force_insert=True)
        return key, full_key

    def get_from_key(self, parsed: crypto.ParsedKey) -> "APIKey | None":
        """The row a parsed key belongs to, whatever its state; None if unknown or wrong secret."""
        # The team comes in the same query: limits and budgets need it on every request. Only
        # existing keys are kept: prefixes that find nothing are the sender's choice, unbounded.
        key = snapshot.read(
            ("api_key", parsed.prefix),
            lambda: self.select_related("team").filter(prefix=parsed.prefix).first(),
            keep_missing=False,
        )
        if key is None or not crypto.secret_matches(parsed.secret, key.hashed_secret):
            return None
        return key


class APIKey(LimitsAndBudget):
    name = models.CharField(max_length=100)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="api_keys")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys"
    )
    prefix = models.CharField(max_length=crypto.PREFIX_LENGTH, unique=True, editable=False)
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
    content_filter = models.CharField(
        "output filter",
        max_length=8,
        choices=FilterMode.choices,
        blank=True,
        help_text="Overrides the model version's output filter for this key. Empty: the version's.",
    )
    may_pin_drafts = models.BooleanField(
        "may pin drafts",
        default=False,
        help_text="Allow name:version requests for draft versions (unpriced, outside experiments). "
        "Without it a key pins production and staging versions only.",
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
        full_key, self.prefix, self.hashed_secret = crypto.generate()
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

    def may_pin(self, version) -> bool:
        """Whether a `name:version` request of this key may run on that version."""
        return self.may_pin_drafts or version.status in (Status.PRODUCTION, Status.STAGING)

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
        cutoff = now - timedelta(seconds=settings.GATEWAY_KEY_LAST_USED_RESOLUTION_S)
        if (self.last_used_at is None or self.last_used_at < cutoff) and not db.unreachable():
            try:
                APIKey.objects.filter(pk=self.pk).filter(
                    models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=cutoff)
                ).update(last_used_at=now)
            except (OperationalError, InterfaceError):
                # Bookkeeping, not billing: a database outage must not fail the request.
                db.set_reachable(False)
                return
            self.last_used_at = now
