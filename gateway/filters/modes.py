from django.db import models

# What the original service answered in place of an answer with a match.
BLOCKED_MESSAGE = "[Output filtered for security]"


class FilterMode(models.TextChoices):
    REDACT = "redact", "Redact: each match replaced by [REDACTED:<type>]"
    BLOCK = "block", f"Block: the whole answer replaced by {BLOCKED_MESSAGE}"
    OFF = "off", "Off"
