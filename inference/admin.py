from django.contrib import admin, messages

from inference.models import ModelVersion, Status


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "task", "backend", "status", "promoted_at", "created_at")
    list_filter = ("status", "task", "backend", "name")
    search_fields = ("name", "version", "source", "notes")
    readonly_fields = ("created_at", "updated_at", "promoted_at")
    fieldsets = (
        (None, {"fields": ("name", "version", "task", "backend", "source", "status", "labels", "config", "notes")}),
        ("Pricing (USD)", {"fields": ("input_cost_per_1k", "output_cost_per_1k", "cost_per_request")}),
        ("Limits and batching", {"fields": ("max_input_chars", "max_batch_size", "max_batch_wait_ms")}),
        ("Response cache", {"fields": ("cache_ttl_s", "cache_scope", "cache_sampled")}),
        ("History", {"fields": ("created_at", "updated_at", "promoted_at")}),
    )
    actions = ["promote", "archive"]

    @admin.action(description="Promote to production (the current one steps down to staging)")
    def promote(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        if len(names) != len(set(names)):
            self.message_user(request, "Select at most one version per model name.", messages.ERROR)
            return
        for version in queryset:
            version.promote()
        self.message_user(request, f"Promoted {', '.join(str(v) for v in queryset)}.")

    @admin.action(description="Archive (no longer served)")
    def archive(self, request, queryset):
        for version in queryset:
            version.archive()
        self.message_user(request, f"Archived {len(queryset)} version(s).")

    def save_model(self, request, obj, form, change):
        # Production is reached through the promote action, which steps the old version down.
        if obj.status == Status.PRODUCTION and (not change or "status" in form.changed_data):
            obj.status = Status.STAGING
            super().save_model(request, obj, form, change)
            obj.promote()
            return
        super().save_model(request, obj, form, change)
