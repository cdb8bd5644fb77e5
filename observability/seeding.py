"""Synthetic request history for demos and for measuring the dashboards at scale.

Rows look like the gateway's own: a few heavy keys and a long tail, a daily cycle, each key
on one to three model versions, the error types the gateway answers with and the
columns it fills for each (a 401 has no key row and no model, a 400 no model...), latencies
per version with a long tail, costs from the versions' prices; chat calls to upstreams with
retries and fallbacks now and then. PostgreSQL gets them by COPY
(about 1M rows a minute on 2 cores); other databases by bulk INSERTs.
"""

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from gateway.models import APIKey, RequestLog, Team
from inference import pricing
from inference.management.commands.bootstrap import PACKAGED_MODEL
from inference.models import Backend, ModelVersion, Provider, Status, Task
from observability import rollups

DEMO_KEY_PREFIX = "demo-"
_CHUNK = 50_000

DEMO_PROVIDER = "demo-upstream"
# (team name after the prefix, monthly budget in USD)
_DEMO_TEAMS = [("search", "40"), ("support", "15"), ("analytics", "5"), ("mobile", "25")]
# Versions only the seeder creates, archived so nothing routes to them, priced so the cost
# dashboards have something to show: (name, version, task, USD per 1k input tokens, per 1k
# output tokens, per request).
_DEMO_VERSIONS = [
    ("demo-sentiment", "distilbert-v1", Task.TEXT_CLASSIFICATION, "0.0004", "0", "0.00002"),
    ("demo-sentiment", "distilbert-v2", Task.TEXT_CLASSIFICATION, "0.0004", "0", "0.00001"),
    ("demo-topics", "minilm-topics-v1", Task.TEXT_CLASSIFICATION, "0.0010", "0", "0.00005"),
    ("demo-embeddings", "e5-large-v1", Task.EMBEDDINGS, "0.0020", "0", "0"),
    ("demo-chat", "small-v1", Task.CHAT, "0.00015", "0.0006", "0"),
    ("demo-chat", "large-v1", Task.CHAT, "0.0025", "0.01", "0"),
]


class _TaskProfile(NamedTuple):
    latency_ms: float  # median
    sigma: float  # spread of the latency's log
    tokens: int  # median input tokens
    output_tokens: int  # median output tokens
    paths: tuple[str, ...]


# The typical traffic of each task (the keys are the tasks the seeder draws versions of).
_TASK_PROFILE: dict[str, _TaskProfile] = {
    Task.TEXT_CLASSIFICATION: _TaskProfile(
        latency_ms=18.0, sigma=0.6, tokens=22, output_tokens=0, paths=("/api/v1/predict", "/predict")
    ),
    Task.EMBEDDINGS: _TaskProfile(
        latency_ms=35.0, sigma=0.7, tokens=80, output_tokens=0, paths=("/api/v1/embeddings",)
    ),
    Task.CHAT: _TaskProfile(
        latency_ms=900.0, sigma=0.7, tokens=250, output_tokens=120, paths=("/v1/chat/completions",)
    ),
}
# Upstream calls: how often one is retried, and answered by a fallback version.
_RETRY_SHARE, _FALLBACK_SHARE = 0.06, 0.03
# (status, error type, share of requests); the rest succeed.
_OUTCOMES = [
    (400, "invalid_request", 0.030),
    (401, "authentication_error", 0.010),
    (403, "permission_denied", 0.004),
    (404, "model_not_found", 0.004),
    (500, "model_error", 0.004),
    (503, "model_unavailable", 0.012),
]
_CACHE_HIT_SHARE = 0.12
# Relative traffic per hour of the day (UTC): a working-day hump over a quiet night.
_HOURLY_WEIGHTS = [3, 2, 2, 2, 2, 3, 5, 8, 11, 13, 14, 14, 13, 14, 14, 13, 12, 10, 8, 7, 6, 5, 4, 3]
_COLUMNS = (
    "request_id",
    "created_at",
    "api_key_id",
    "key_prefix",
    "method",
    "endpoint",
    "model_name",
    "requested_model",
    "model_version_id",
    "version",
    "status_code",
    "error_type",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cache_hit",
    "input_price_per_1k",
    "output_price_per_1k",
    "price_missing",
    "provider",
    "attempts",
    "route",
    "fallback_used",
    "routing_rule",
    "ttft_ms",
    "truncated",
    "usage_estimated",
    "cost_saved_usd",
    "team_id",
    "output_label",
    "variant",
    "unit",
    "client_ip",
    "input_text",
    "served_stale",
    "filtered",
)


@dataclass
class SeedResult:
    rows: int
    start: datetime
    end: datetime
    keys: int
    versions: int


def seed_request_logs(
    *, rows: int, days: int = 30, keys: int = 20, end: datetime | None = None, seed: int = 0
) -> SeedResult:
    """Insert `rows` synthetic rows spread over the `days` before `end`, then roll them up."""
    rng = random.Random(seed)
    end = end or timezone.now()
    start = end - timedelta(days=days)
    demo_keys = _demo_keys(keys)
    versions = _versions()
    plan = _Plan(rng, demo_keys, versions, start, days)
    insert = _copy_rows if connection.vendor == "postgresql" else _bulk_create_rows
    done = 0
    while done < rows:
        count = min(_CHUNK, rows - done)
        with transaction.atomic():
            insert([plan.row() for _ in range(count)])
        done += count
    rollups.rebuild(start, end)
    return SeedResult(rows=rows, start=start, end=end, keys=len(demo_keys), versions=len(versions))


def _demo_keys(count: int) -> list[APIKey]:
    """Demo keys, spread over demo teams (each with a monthly budget, for the budget columns)."""
    teams = [
        Team.objects.get_or_create(name=f"{DEMO_KEY_PREFIX}{name}", defaults={"budget_usd": Decimal(budget)})[0]
        for name, budget in _DEMO_TEAMS
    ]
    existing = list(APIKey.objects.filter(name__startswith=DEMO_KEY_PREFIX).order_by("name")[:count])
    for index in range(len(existing), count):
        key, _ = APIKey.objects.create_key(name=f"{DEMO_KEY_PREFIX}key-{index + 1:02d}", team=teams[index % len(teams)])
        existing.append(key)
    return existing


def _versions() -> list[ModelVersion]:
    provider, _ = Provider.objects.get_or_create(
        name=DEMO_PROVIDER,
        # The discard port: the seeded versions are archived and never called.
        defaults={"base_url": "http://127.0.0.1:9/v1", "timeout_s": 1.0},
    )
    for name, version, task, per_1k_in, per_1k_out, per_request in _DEMO_VERSIONS:
        chat = task == Task.CHAT
        ModelVersion.objects.get_or_create(
            name=name,
            version=version,
            defaults={
                "task": task,
                "backend": Backend.OPENAI if chat else Backend.TRANSFORMERS,
                "source": "" if chat else PACKAGED_MODEL,
                "provider": provider if chat else None,
                "upstream_model": version if chat else "",
                "status": Status.ARCHIVED,
                "input_cost_per_1k": Decimal(per_1k_in),
                "output_cost_per_1k": Decimal(per_1k_out),
                "cost_per_request": Decimal(per_request),
                "notes": "Synthetic: created by seedrequestlogs for demos; never served.",
            },
        )
    return list(
        ModelVersion.objects.exclude(status=Status.DRAFT)
        .filter(task__in=list(_TASK_PROFILE))
        .select_related("provider")
        .order_by("name", "version")
    )


class _Plan:
    """Draws one synthetic row at a time; each key prefers one or two versions."""

    def __init__(
        self, rng: random.Random, keys: list[APIKey], versions: list[ModelVersion], start: datetime, days: int
    ):
        self.rng, self.keys, self.versions, self.start, self.days = rng, keys, versions, start, days
        # A few keys make most of the traffic (Zipf-like weights).
        self.key_weights = _cumulative([1 / (rank + 1) ** 1.1 for rank in range(len(keys))])
        self.version_weights = [self._versions_of_one_key(len(versions)) for _ in keys]
        self.hour_weights = _cumulative(_HOURLY_WEIGHTS)
        self.outcome_weights = _cumulative([share for *_, share in _OUTCOMES] + [1 - sum(s for *_, s in _OUTCOMES)])
        self.latency_scale = {v.pk: rng.uniform(0.7, 1.6) for v in versions}

    def _versions_of_one_key(self, count: int) -> list[float]:
        """A key belongs to a service that calls one to three models, one of them mostly."""
        used = self.rng.sample(range(count), k=min(count, self.rng.choice([1, 1, 2, 2, 3])))
        weights = [0.0] * count
        for rank, index in enumerate(used):
            weights[index] = 1 / (rank + 1) ** 2
        return _cumulative(weights)

    def row(self) -> tuple:
        rng = self.rng
        key_index = rng.choices(range(len(self.keys)), cum_weights=self.key_weights)[0]
        key = self.keys[key_index]
        version = rng.choices(self.versions, cum_weights=self.version_weights[key_index])[0]
        profile = _TASK_PROFILE[version.task]
        created_at = self.start + timedelta(
            days=rng.randrange(self.days),
            hours=rng.choices(range(24), cum_weights=self.hour_weights)[0],
            seconds=rng.random() * 3600,
        )
        outcome = rng.choices(range(len(_OUTCOMES) + 1), cum_weights=self.outcome_weights)[0]
        status, error_type = _OUTCOMES[outcome][:2] if outcome < len(_OUTCOMES) else (200, "")
        api_key_id: int | None
        routed: ModelVersion | None  # None: refused before routing
        api_key_id, model_name, requested, routed = key.pk, version.name, version.name, version
        if status == 401:
            api_key_id, model_name, requested, routed = None, "", "", None
        elif status == 400:
            model_name, requested, routed = "", "", None
        elif status == 404:
            model_name, requested, routed = "", rng.choice(["gpt-4o", "sentiment-v3", "claude"]), None
        elif status == 403:
            model_name, routed = "", None
        tokens = max(1, int(rng.lognormvariate(0, 0.5) * profile.tokens)) if status in (200, 500) else 0
        output_tokens = int(rng.lognormvariate(0, 0.6) * profile.output_tokens) if status == 200 else 0
        cache_hit = status == 200 and rng.random() < _CACHE_HIT_SHARE
        latency = self._latency(version, status, cache_hit, profile)
        charged = status == 200 and not cache_hit
        full_cost = _cost(version, tokens, output_tokens) if status == 200 else Decimal(0)
        cost = full_cost if charged else Decimal(0)
        provider = version.provider if routed is not None and not cache_hit else None
        upstream = provider is not None
        attempts = (1 + (rng.random() < _RETRY_SHARE) + (rng.random() < _RETRY_SHARE)) if upstream else 0
        fallback = upstream and status == 200 and rng.random() < _FALLBACK_SHARE
        if fallback:
            attempts += 1
        route = [f"{version}: ok" if status == 200 else f"{version}: failed"] if upstream else []
        return (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            created_at,
            api_key_id,
            key.prefix,
            "POST",
            rng.choice(profile.paths),
            model_name,
            requested,
            routed.pk if routed else None,
            routed.version if routed else "",
            status,
            error_type,
            latency,
            tokens,
            output_tokens,
            cost,
            cache_hit,
            version.input_cost_per_1k if charged else None,
            version.output_cost_per_1k if charged else None,
            False,
            provider.name if provider is not None else "",
            attempts,
            route,
            fallback,
            "",
            latency * rng.uniform(0.2, 0.5) if upstream and status == 200 else None,
            False,
            False,
            full_cost if cache_hit else Decimal(0),  # what the hit saved
            key.team_id if api_key_id else None,
            "",
            "",
            "",
            f"10.20.{key_index // 250}.{key_index % 250 + 1}",
            "",
            False,
            {},
        )

    def _latency(self, version: ModelVersion, status: int, cache_hit: bool, profile: _TaskProfile) -> float:
        rng = self.rng
        if cache_hit or status in (400, 401, 403, 404):
            return rng.lognormvariate(0, 0.4) * 2.5
        if status == 503 and rng.random() < 0.3:
            return 10_000 + rng.random() * 50  # waited for the model until the timeout
        median = profile.latency_ms * self.latency_scale[version.pk]
        return rng.lognormvariate(0, profile.sigma) * median


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _cost(version: ModelVersion, input_tokens: int, output_tokens: int) -> Decimal:
    return pricing.cost_of(version, input_tokens, output_tokens).quantize(Decimal("0.00000001"))


def _copy_rows(rows: list[tuple]) -> None:
    columns = ", ".join(_COLUMNS)
    sql = f"COPY {RequestLog._meta.db_table} ({columns}) FROM STDIN"
    json_columns = {_COLUMNS.index("route"), _COLUMNS.index("filtered")}
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(tuple(Jsonb(value) if i in json_columns else value for i, value in enumerate(row)))


def _bulk_create_rows(rows: list[tuple]) -> None:
    RequestLog.objects.bulk_create([RequestLog(**dict(zip(_COLUMNS, row, strict=True))) for row in rows], 2000)
