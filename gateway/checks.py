"""Deployment checks (`manage.py check --deploy`) for what Django's own do not know about."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def metrics_token_set(app_configs, **kwargs):
    if settings.GATEWAY_EMBEDDED or settings.GATEWAY_METRICS_TOKEN:
        return []
    return [
        Warning(
            "GATEWAY_METRICS_TOKEN is not set: /metrics answers 401 to every scrape.",
            hint="Set GATEWAY_METRICS_TOKEN (or GATEWAY_METRICS_TOKEN_FILE) and give Prometheus the same token.",
            id="gateway.W001",
        )
    ]
