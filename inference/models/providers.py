import ipaddress
import logging
import os
import re
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

logger = logging.getLogger(__name__)

# Variables the gateway reads for its own secrets: never a provider's key, whatever pattern
# the deployment configures (their <NAME>_FILE forms are refused with them).
GATEWAY_VARIABLES = frozenset(
    {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "RESPONSE_CACHE_URL",
        "CELERY_BROKER_URL",
        "GATEWAY_METRICS_TOKEN",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
    }
)


class ProviderNotTrusted(Exception):
    """A provider row outside the trust boundary (edited around the admin's validation)."""


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
    """An OpenAI-compatible upstream. Its secret stays in the environment, never in the database.

    Whoever edits a provider decides where a provider key is sent, so editing one needs the
    `manage_provider` permission, and the row must stay inside the trust boundary: its key
    variable matches GATEWAY_PROVIDER_KEY_ENV_PATTERN and is none of the gateway's own, and
    its URL is https unless its host is in GATEWAY_PROVIDER_HTTP_HOSTS. Checked when saved
    through a form and again before the key is read.
    """

    name = models.SlugField(max_length=50, unique=True)
    base_url = models.URLField(help_text="The API root, e.g. https://api.openai.com/v1")
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the provider's API key (empty: none sent), "
        "e.g. OPENAI_API_KEY.",
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
        permissions = [
            ("manage_provider", "Can add, change and delete providers and test their connection"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        problems = self.trust_problems()
        if problems:
            raise ValidationError(problems)

    def trust_problems(self) -> dict[str, str]:
        """What puts this provider outside the trust boundary, by field (empty: nothing)."""
        problems = {}
        name = self.api_key_env
        if name and (
            not re.fullmatch(settings.GATEWAY_PROVIDER_KEY_ENV_PATTERN, name)
            or name.removesuffix("_FILE") in GATEWAY_VARIABLES
        ):
            problems["api_key_env"] = (
                f"Not a provider key variable: the name must match {settings.GATEWAY_PROVIDER_KEY_ENV_PATTERN} "
                "and be none of the gateway's own settings."
            )
        url = urlparse(self.base_url)
        host = url.hostname or ""
        if url.scheme != "https" and host not in settings.GATEWAY_PROVIDER_HTTP_HOSTS:
            problems["base_url"] = (
                f"Use https: plain http is allowed only to {', '.join(settings.GATEWAY_PROVIDER_HTTP_HOSTS)} "
                "(GATEWAY_PROVIDER_HTTP_HOSTS)."
            )
        elif _is_internal_address(host) and host not in settings.GATEWAY_PROVIDER_HTTP_HOSTS:
            problems["base_url"] = (
                "An internal address (private, loopback or link-local) is allowed only when listed in "
                "GATEWAY_PROVIDER_HTTP_HOSTS."
            )
        return problems

    def api_key(self) -> str:
        """The provider's key from the environment ("" when it names none). Read before every
        call, so a provider outside the boundary is never called: ProviderNotTrusted."""
        problems = self.trust_problems()
        if problems:
            logger.error("Provider %s is outside the trust boundary and is not called: %s", self, problems)
            raise ProviderNotTrusted(f"Provider {self} is misconfigured and is not called.")
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


def _is_internal_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: where it resolves is the network's to restrict (docs/decisions/0052-threat-model.md)
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
