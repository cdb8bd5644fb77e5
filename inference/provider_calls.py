"""Calls to a provider off the hot path, through the openai SDK (the reference client)."""

import openai

from inference.models import Provider


def provider_models(provider: Provider) -> list[str]:
    client = openai.OpenAI(
        base_url=provider.base_url,
        api_key=provider.api_key() or "none",
        timeout=min(provider.timeout_s, 10.0),
        max_retries=0,
    )
    return sorted(model.id for model in client.models.list())
