"""JSON request bodies, bounded in nesting depth.

A body such as `[[[[…]]]]` makes the JSON decoder recurse until Python's recursion limit,
which DRF's own parser turns into a 500 with a traceback. Here it is a 400, and so is any
body nested deeper than GATEWAY_MAX_JSON_DEPTH (no endpoint reads more than a few levels).
"""

import json

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class TooDeep(ValueError):
    pass


def loads(text: str | bytes):
    """`json.loads`, refusing documents nested deeper than the limit with `TooDeep` (a ValueError)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(_too_deep_message()) from None
    if _depth_over(value, settings.GATEWAY_MAX_JSON_DEPTH):
        raise TooDeep(_too_deep_message())
    return value


def _depth_over(value, limit: int) -> bool:
    # Iterative: a walk as deep as the document must not recurse itself.
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
    return False


def _too_deep_message() -> str:
    return f"JSON parse error - nested deeper than {settings.GATEWAY_MAX_JSON_DEPTH} levels."


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the depth bound."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_too_deep_message()) from None
        if _depth_over(data, settings.GATEWAY_MAX_JSON_DEPTH):
            raise ParseError(_too_deep_message())
        return data


class FormEncodedJSONParser(JSONParser):
    """Reads JSON sent with curl's default `-d` content type.

    `curl -d '{"text": "..."}'` labels the body application/x-www-form-urlencoded;
    the API only speaks JSON, so such a body is parsed as JSON (and is a 400 if it is not).
    """

    media_type = "application/x-www-form-urlencoded"
