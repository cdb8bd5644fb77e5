"""API key format, generation and hashing.

A key reads `gw_<prefix>.<secret>`. The prefix is public (shown in the admin and on
log rows) and finds the row; only a SHA-256 of the secret is stored. The secret has
256 bits of entropy, so a fast hash is enough: a slow password hasher would only add
latency to every request (the reasoning of djangorestframework-api-key's security notes).
"""

import hashlib
import hmac
import re
import secrets
import string
from typing import NamedTuple

PREFIX_LENGTH = 8
_ALPHABET = string.ascii_letters + string.digits
_KEY_RE = re.compile(r"gw_([A-Za-z0-9]{8})\.([A-Za-z0-9_-]{43})")


class ParsedKey(NamedTuple):
    prefix: str
    secret: str


def generate() -> tuple[str, str, str]:
    """Return (full key, prefix, hash of the secret)."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(32)
    return f"gw_{prefix}.{secret}", prefix, hash_secret(secret)


def parse(raw: str) -> ParsedKey | None:
    """Split a presented key, or None when it cannot be one of ours (no lookup needed)."""
    match = _KEY_RE.fullmatch(raw)
    return ParsedKey(*match.groups()) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
