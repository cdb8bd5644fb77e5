from rest_framework import authentication, exceptions

from gateway.keys import crypto
from gateway.models import APIKey


def presented_key(request) -> str | None:
    """The key from `X-API-Key` (the original header) or `Authorization: Bearer` (OpenAI clients)."""
    header = request.META.get("HTTP_X_API_KEY")
    if header:
        return header.strip()
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class APIKeyAuthentication(authentication.BaseAuthentication):
    """Resolves the key once per request; `request.auth` is the APIKey row.

    The key's prefix reaches the request's log row only once its secret matched: a prefix
    that was merely typed says nothing about who sent it. Failures are counted per client
    address by the middleware (gateway/limits/addresses.py), which refuses an address past
    its limit before this runs.
    """

    def authenticate(self, request):
        raw = presented_key(request)
        if raw is None:
            return None
        parsed = crypto.parse(raw)
        if parsed is None:  # refused without touching the database
            raise exceptions.AuthenticationFailed("Malformed API key; keys look like gw_<prefix>.<secret>.")
        key = APIKey.objects.get_from_key(parsed)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        request.ctx.set_key(key)
        reason = key.refusal_reason()
        if reason:
            raise exceptions.AuthenticationFailed(reason)
        key.touch()
        return (key.owner, key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
