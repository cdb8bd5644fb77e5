from django.contrib import admin, messages

from inference.models import FallbackChain, FallbackStep, ModelVersion, Provider, RoutingRule, Status
from inference.providers import provider_models


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "task", "backend", "status", "priced", "promoted_at", "created_at")
    list_filter = ("status", "task", "backend", "name")
    search_fields = ("name", "version", "source", "notes")
    readonly_fields = ("created_at", "updated_at", "promoted_at")
    fieldsets = (
        (None, {"fields": ("name", "version", "task", "backend", "status", "notes")}),
        ("Local model", {"fields": ("source", "labels", "config")}),
        ("Upstream", {"fields": ("provider", "upstream_model")}),
        ("Pricing (USD)", {"fields": ("input_cost_per_1k", "output_cost_per_1k", "cost_per_request")}),
        ("Limits and batching", {"fields": ("max_input_chars", "max_batch_size", "max_batch_wait_ms")}),
        ("History", {"fields": ("created_at", "updated_at", "promoted_at")}),
    )
    actions = ["promote", "archive"]

    @admin.display(boolean=True, description="Priced")
    def priced(self, obj):
        # An unpriced version is costed $0 with the row flagged: make it visible here.
        return obj.is_priced

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


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "base_url", "api_key_env", "key_present", "timeout_s", "max_retries")
    search_fields = ("name", "base_url")
    actions = ["test_connection"]

    @admin.display(boolean=True, description="Key in environment")
    def key_present(self, obj):
        return bool(obj.api_key()) if obj.api_key_env else None

    @admin.action(description="Test connection (list the provider's models)")
    def test_connection(self, request, queryset):
        for provider in queryset:
            try:
                names = provider_models(provider)
            except Exception as exc:
                self.message_user(request, f"{provider}: failed: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{provider}: reachable; models: {', '.join(names) or 'none listed'}")


class FallbackStepInline(admin.TabularInline):
    model = FallbackStep
    extra = 1
    autocomplete_fields = ("version",)


@admin.register(FallbackChain)
class FallbackChainAdmin(admin.ModelAdmin):
    list_display = ("model_name", "chain")
    inlines = [FallbackStepInline]

    @admin.display(description="Tried after the serving version, in order")
    def chain(self, obj):
        return " → ".join(str(step.version) for step in obj.steps.select_related("version"))


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = (
        "model_name", "priority", "name", "enabled", "min_prompt_chars", "max_prompt_chars", "keywords",
        "min_max_tokens", "target",
    )  # fmt: skip
    list_editable = ("priority", "enabled")
    list_filter = ("model_name", "enabled")
    autocomplete_fields = ("target",)
