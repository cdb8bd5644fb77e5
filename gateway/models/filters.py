from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from gateway.filters.detectors import DigitRuns, compiles


def _validate_pattern(value: str) -> None:
    if (problem := compiles(value)) is not None:
        raise ValidationError(problem)


class FilterPattern(models.Model):
    """An operator's pattern for the content filter, next to the built-in SSN and card detectors."""

    name = models.CharField(
        max_length=40,
        unique=True,
        validators=[RegexValidator(r"^[A-Z][A-Z0-9_]*$", "Capitals, digits and underscores, e.g. EMAIL.")],
        help_text="Shown in the mask, [REDACTED:<name>], and in the metrics and log rows that count matches.",
    )
    pattern = models.TextField(
        validators=[_validate_pattern],
        help_text=r"A regular expression (Python syntax), e.g. [\w.+-]+@[\w-]+\.[\w.]+ for e-mail addresses.",
    )
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.name in DigitRuns.kinds:
            raise ValidationError({"name": f"{self.name} is a built-in detector's name."})
