import os

from django.db import models


class Provider(models.Model):
    """An OpenAI-compatible upstream. Its secret stays in the environment, never in the database."""

    name = models.SlugField(max_length=50, unique=True)
    base_url = models.URLField(help_text="The API root, e.g. https://api.openai.com/v1")
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the provider's API key (empty: none sent).",
    )
    timeout_s = models.FloatField("timeout (s)", default=60.0, help_text="Per attempt, connect and read.")
    max_retries = models.PositiveSmallIntegerField(
        default=2, help_text="Retries after the first attempt on 429, 5xx, timeouts and connection errors."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""
