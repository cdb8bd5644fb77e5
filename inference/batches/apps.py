from django.apps import AppConfig


class BatchesConfig(AppConfig):
    """Batch jobs: many inputs submitted at once, run by Celery workers in chunks."""

    name = "inference.batches"
    label = "batches"
    verbose_name = "Batch jobs"
    default_auto_field = "django.db.models.BigAutoField"
