from celery import shared_task
from django.utils import timezone

from inference.fine_tuning import FineTuning, fine_tune_classifier
from inference.models import TrainingMethod, TrainingRun, TrainingStatus
from inference.training import TrainingError, train_classifier


@shared_task
def train_classifier_run(run_id: int) -> None:
    """Train the run's classifier, recording progress on the row (the admin shows it)."""
    # Claim the run; a run left `running` by a lost worker is taken again on redelivery
    # (tasks are acknowledged late), one already finished is not.
    claimed = TrainingRun.objects.filter(pk=run_id, status__in=[TrainingStatus.QUEUED, TrainingStatus.RUNNING]).update(
        status=TrainingStatus.RUNNING, progress=0, message="starting"
    )
    if not claimed:
        return
    run = TrainingRun.objects.get(pk=run_id)

    def progress(percent: int, message: str) -> None:
        TrainingRun.objects.filter(pk=run_id).update(progress=percent, message=message)

    common = {
        "data_path": run.data_path,
        "base": run.base,
        "name": run.name,
        "version": run.version,
        "label_names": run.label_names,
        "limit": run.limit,
        "holdout": run.holdout,
        "actor": run.requested_by or "training task",
        "progress": progress,
    }
    try:
        if run.method == TrainingMethod.FINE_TUNE:
            options = FineTuning(epochs=run.epochs, max_minutes=run.max_minutes)
            version = fine_tune_classifier(**common, options=options)
        else:
            version = train_classifier(**common)
    except Exception as exc:
        message = str(exc) if isinstance(exc, TrainingError) else f"{exc.__class__.__name__}: {exc}"
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingStatus.FAILED, message=message, finished_at=timezone.now()
        )
        if not isinstance(exc, TrainingError):
            raise
        return
    TrainingRun.objects.filter(pk=run_id).update(
        status=TrainingStatus.SUCCEEDED,
        progress=100,
        result=version,
        message=f"Registered {version}: held-out accuracy {version.metrics['heldout_accuracy']:.3f}.",
        finished_at=timezone.now(),
    )
