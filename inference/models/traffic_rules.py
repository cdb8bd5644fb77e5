from django.db import models

from inference.models.versions import ModelVersion


class FallbackChain(models.Model):
    """Versions tried in order when the version serving a model name fails."""

    model_name = models.CharField(max_length=100, unique=True)

    def __str__(self):
        return f"fallbacks for {self.model_name}"


class FallbackStep(models.Model):
    chain = models.ForeignKey(FallbackChain, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "position"], name="fallbackstep_unique_position"),
        ]

    def __str__(self):
        return f"{self.position}. {self.version}"


class RoutingRule(models.Model):
    """Picks a version for a routed model name (e.g. `auto`); the first enabled matching rule wins.

    Every condition left empty matches; a rule with none is the catch-all.
    """

    model_name = models.CharField(max_length=100, help_text="The name clients ask for, e.g. auto.")
    name = models.CharField(max_length=100, help_text="Shown on log rows, e.g. long-prompts-to-large.")
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower runs first.")
    enabled = models.BooleanField(default=True)
    min_prompt_chars = models.PositiveIntegerField(null=True, blank=True)
    max_prompt_chars = models.PositiveIntegerField(null=True, blank=True)
    keywords = models.JSONField(
        default=list, blank=True, help_text="Matches when the prompt contains any of these (case-insensitive)."
    )
    min_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Matches when the request asks for at least this many max_tokens."
    )
    target = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["model_name", "priority", "pk"]

    def __str__(self):
        return f"{self.model_name}: {self.name} -> {self.target}"

    def matches(self, prompt: str, max_tokens: int | None) -> bool:
        if self.min_prompt_chars is not None and len(prompt) < self.min_prompt_chars:
            return False
        if self.max_prompt_chars is not None and len(prompt) > self.max_prompt_chars:
            return False
        if self.keywords and not any(word.lower() in prompt.lower() for word in self.keywords):
            return False
        return self.min_max_tokens is None or (max_tokens or 0) >= self.min_max_tokens
