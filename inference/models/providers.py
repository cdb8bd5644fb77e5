import os

from django.core.exceptions import ValidationError
from django.db import models

# OpenAI request parameters a provider receives unless its allowlist says otherwise: those the
# gateway counts and prices (tokens, `n`) and those that only shape the answer. Tools, audio,
# service tiers, predicted outputs… are refused until an operator adds them for a provider
# (docs/decisions/0046-bounded-llm-requests.md).
DEFAULT_PARAMETERS = [
    # chat completions
    "model", "messages", "max_tokens", "max_completion_tokens", "n", "stop", "stream", "stream_options",
    "temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "logit_bias", "logprobs",
    "top_logprobs", "response_format", "user",
    # embeddings
    "input", "dimensions",
]  # fmt: skip
# Parameters the OpenAI API defines as optional and free of effect on the answer's content:
# outside a provider's allowlist they are dropped rather than refused, as the API would answer
# without them (no stored completion, the default tier, no caller metadata).
DROPPED_PARAMETERS = frozenset({"store", "metadata", "service_tier", "user", "prompt_cache_key", "safety_identifier"})


def _default_parameters() -> list[str]:
    return list(DEFAULT_PARAMETERS)


def _validate_parameters(value):
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValidationError('Enter a list of parameter names, e.g. ["messages", "max_tokens"].')


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
    allowed_parameters = models.JSONField(
        default=_default_parameters,
        validators=[_validate_parameters],
        help_text="Request fields passed to this provider; requests with others are refused with 400 "
        f"(except {', '.join(sorted(DROPPED_PARAMETERS))}, which are dropped).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""
