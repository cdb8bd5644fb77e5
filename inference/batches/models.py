import uuid

from django.db import models
from django.utils import timezone

from gateway.keys import crypto
from gateway.models import APIKey
from inference.models import ModelVersion, Task


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# A job in one of these states still has work coming; the others are final.
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# What a batch job can run: the local tasks (chat goes through /v1/chat/completions).
BATCH_TASKS = [(task.value, task.label) for task in (Task.TEXT_CLASSIFICATION, Task.EMBEDDINGS)]


class BatchJob(models.Model):
    """Many inputs for one model, submitted at once; its items are the unit of work and of results."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_key = models.ForeignKey(APIKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_jobs")
    # Kept apart from the FK so the job still says which key once the key is deleted.
    key_prefix = models.CharField(max_length=crypto.PREFIX_LENGTH, blank=True)
    task = models.CharField(max_length=32, choices=BATCH_TASKS)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_jobs"
    )
    # `name:version`, pinned at submission: every item of a job runs on the same version.
    model_ref = models.CharField(max_length=160)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total_items = models.PositiveIntegerField()
    # Counted in the transaction that stores the items' outcomes, so they never drift from the items.
    succeeded_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    chunk_size = models.PositiveIntegerField(help_text="Items per Celery task.")
    error = models.TextField(blank=True, help_text="Why the job failed as a whole.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Last time a chunk stored outcomes (or the job was queued): how stalled jobs are found.
    last_activity_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["api_key", "created_at"], name="batchjob_key_time"),
            models.Index(fields=["status", "created_at"], name="batchjob_status_time"),
        ]

    def __str__(self):
        return f"batch {self.pk} ({self.status}, {self.processed_items}/{self.total_items})"

    @property
    def processed_items(self) -> int:
        return self.succeeded_items + self.failed_items

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def model_name(self) -> str:
        return self.model_ref.partition(":")[0]

    @property
    def version(self) -> str:
        return self.model_ref.partition(":")[2]

    @property
    def log_endpoint(self) -> str:
        """What the RequestLog rows of its items carry as endpoint, so usage by job is one filter."""
        return f"/api/v1/batches/{self.pk}"

    def chunk_starts(self, indexes=None) -> list[int]:
        """The first index of each chunk, of all chunks or of those holding the given item indexes."""
        if indexes is None:
            return list(range(0, self.total_items, self.chunk_size))
        return sorted({index - index % self.chunk_size for index in indexes})

    def chunk_stop(self, start: int) -> int:
        return min(start + self.chunk_size, self.total_items)


class BatchItem(models.Model):
    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    text = models.TextField()
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    result = models.JSONField(null=True, blank=True)
    error_type = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    # The request id of the attempt's RequestLog row; a retry gets a new one.
    request_id = models.UUIDField(default=uuid.uuid4, unique=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="batchitem_unique_index")]
        indexes = [models.Index(fields=["job", "status"], name="batchitem_job_status")]

    def __str__(self):
        return f"item {self.index} of {self.job_id} ({self.status})"
