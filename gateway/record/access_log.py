"""One JSON log line per API request, for log shippers (Loki, ELK, CloudWatch).

Fields are the request's outcome only: ids, key prefix, model, status, latency, tokens, cost.
Never the key secret or the request text (those stay out of every log line).
"""

import json
import logging
from datetime import UTC, datetime

logger = logging.getLogger("gateway.access")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object per line: time, level, logger, message and its `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_request(ctx, *, method: str, path: str, endpoint: str, status_code: int, latency_ms: float) -> None:
    version = ctx.model_version
    fields = {
        "request_id": str(ctx.request_id),
        "method": method,
        "path": path,
        "endpoint": endpoint,
        "key_prefix": ctx.key_prefix,
        # The resolved name only: an unresolved requested name is client input.
        "model": version.name if version is not None else "",
        "version": version.version if version is not None else "",
        "status": status_code,
        "error_type": ctx.error_type,
        "latency_ms": round(latency_ms, 3),
        "input_tokens": ctx.input_tokens,
        "output_tokens": ctx.output_tokens,
        "cost_usd": f"{ctx.cost_usd:f}",  # a decimal string: exact, never 0E-8
        "cache_hit": ctx.cache_hit,
    }
    logger.info("request", extra={"fields": fields})
