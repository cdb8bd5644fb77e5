from django.apps import AppConfig


class BatchesConfig(AppConfig):
    """Batch jobs: many inputs submitted at once, run by Celery workers in chunks."""

    name = "inference.batches"
    label = "batches"
    verbose_name = "Batch jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery.signals import worker_ready

        from inference.batches import sweeper

        worker_ready.connect(sweeper.start, weak=False, dispatch_uid="batch-stall-sweeper")
