from django.db import models
from django.utils import timezone

from gateway.models.keys import APIKey, Team


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
