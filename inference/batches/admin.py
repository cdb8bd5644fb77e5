from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from gateway.api.errors import JobFinished
from inference.batches import services
from inference.batches.models import BatchJob, ItemStatus

# How many failed items the job page lists (the results API has them all).
FAILED_ITEMS_SHOWN = 20


@admin.register(BatchJob)
class BatchJobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "key", "model_ref", "status", "progress", "failed_items", "cost_usd", "created_at")
    list_filter = ("status", "task", "created_at")
    search_fields = ("=id", "=key_prefix", "api_key__owner__username", "model_ref")
    list_select_related = ("api_key__owner",)
    date_hierarchy = "created_at"
    readonly_fields = ("owner", "key", "progress", "failed_sample")
    fields = (
        "id",
        "owner",
        "key",
        "task",
        "model_ref",
        "status",
        "progress",
        "succeeded_items",
        "failed_items",
        "cost_usd",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "last_activity_at",
        "chunk_size",
        "failed_sample",
    )
    actions = ["cancel_jobs", "retry_failed_items"]

    def has_add_permission(self, request):
        return False  # jobs come from the API

    def get_readonly_fields(self, request, obj=None):
        return self.fields  # a job changes only through its actions

    @admin.display(description="Owner")
    def owner(self, job):
        return job.api_key.owner if job.api_key and job.api_key.owner else "—"

    @admin.display(description="Key")
    def key(self, job):
        return f"gw_{job.key_prefix}…"

    @admin.display(description="Progress")
    def progress(self, job):
        return format_html(
            '<progress value="{}" max="{}"></progress> {} / {}',
            job.processed_items,
            job.total_items,
            job.processed_items,
            job.total_items,
        )

    @admin.display(description=f"Failed items (first {FAILED_ITEMS_SHOWN})")
    def failed_sample(self, job):
        failed = job.items.filter(status=ItemStatus.FAILED).order_by("index")[:FAILED_ITEMS_SHOWN]
        return (
            format_html_join(
                "\n", "<div>#{}: {} — {}</div>", ((i.index, i.error_type, i.error_message) for i in failed)
            )
            or "—"
        )

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        cancelled = 0
        for job in queryset:
            try:
                services.batch_job_cancel(job=job)
                cancelled += 1
            except JobFinished:
                pass
        self.message_user(request, f"Cancelled {cancelled} job(s); finished jobs are left as they are.")

    @admin.action(description="Retry failed items (and resume stalled jobs)", permissions=["change"])
    def retry_failed_items(self, request, queryset):
        retried = 0
        for job in queryset:
            try:
                retried += services.batch_job_retry_failed(job=job)
            except JobFinished as exc:
                self.message_user(request, f"{job.pk}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Queued {retried} failed item(s) again.")
