import logging
import uuid

from django.contrib import admin, messages
from django.db import models, transaction

from gateway.admin import AuditEventInline
from gateway.record import audit
from inference.models import FallbackChain, FallbackStep, ModelVersion, Provider, RoutingRule, Status, TrainingRun
from inference.provider_calls import provider_models
from inference.services import model_version_archive, model_version_promote, model_version_register
from inference.tasks import train_classifier_run

logger = logging.getLogger(__name__)


class VersionHistoryInline(AuditEventInline):
    fk_name = "model_version"


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "task", "backend", "status", "priced", "promoted_at", "created_at")
    list_filter = ("status", "task", "backend", "name")
    search_fields = ("name", "version", "source", "notes")
    readonly_fields = ("created_at", "updated_at", "promoted_at", "metrics", "data_sha256")
    fieldsets = (
        (None, {"fields": ("name", "version", "task", "backend", "status", "notes")}),
        ("Local model", {"fields": ("source", "labels", "config")}),
        ("Upstream", {"fields": ("provider", "upstream_model")}),
        ("Pricing (USD)", {"fields": ("input_cost_per_1k", "output_cost_per_1k", "cost_per_request")}),
        (
            "Limits and batching",
            {
                "fields": (
                    "max_input_chars",
                    "max_tokens_cap",
                    "default_max_tokens",
                    "max_batch_size",
                    "max_batch_wait_ms",
                )
            },
        ),
        ("Training", {"fields": ("metrics", "data_sha256")}),
        ("Response cache", {"fields": ("cache_ttl_s", "cache_scope", "cache_sampled", "cache_stale_if_error_s")}),
        ("Answers", {"fields": ("content_filter",)}),
        ("History", {"fields": ("created_at", "updated_at", "promoted_at")}),
    )
    inlines = [VersionHistoryInline]
    actions = ["promote", "archive"]

    @admin.display(boolean=True, description="Priced")
    def priced(self, obj):
        # An unpriced version is costed $0 with the row flagged: make it visible here.
        return obj.is_priced

    @admin.action(description="Promote to production (the current one steps down to staging)", permissions=["change"])
    def promote(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        if len(names) != len(set(names)):
            self.message_user(request, "Select at most one version per model name.", messages.ERROR)
            return
        for version in queryset:
            model_version_promote(version=version, actor=audit.actor_of(request.user))
        self.message_user(request, f"Promoted {', '.join(str(v) for v in queryset)}.")

    @admin.action(description="Archive (no longer served)", permissions=["change"])
    def archive(self, request, queryset):
        for version in queryset:
            model_version_archive(version=version, actor=audit.actor_of(request.user))
        self.message_user(request, f"Archived {len(queryset)} version(s).")

    def save_model(self, request, obj, form, change):
        actor = audit.actor_of(request.user)
        status_set = not change or "status" in form.changed_data
        # Production and archived are reached through their services, which audit them (and step
        # the old production version down): the form saves the version as it was, they do the rest.
        promote = status_set and obj.status == Status.PRODUCTION
        archive = change and status_set and obj.status == Status.ARCHIVED
        if promote or archive:
            obj.status = form.initial["status"] if change else Status.STAGING
        if change:
            super().save_model(request, obj, form, change)
        else:
            model_version_register(version=obj, actor=actor)
        if promote:
            model_version_promote(version=obj, actor=actor)
        elif archive:
            model_version_archive(version=obj, actor=actor)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    """A provider says where a provider key is sent: changing one, or calling it from here,
    takes the `manage_provider` permission (superusers have it), not the usual ones."""

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "base_url", "api_key_env", "key_present", "timeout_s", "max_retries")
    search_fields = ("name", "base_url")
    actions = ["test_connection"]

    def has_manage_permission(self, request, obj=None):
        return request.user.has_perm("inference.manage_provider")

    def has_add_permission(self, request):
        return self.has_manage_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_manage_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_manage_permission(request)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("inference.view_provider") or self.has_manage_permission(request)

    @admin.display(boolean=True, description="Key in environment")
    def key_present(self, obj):
        if not obj.api_key_env or obj.trust_problems():
            return None
        return bool(obj.api_key())

    @admin.action(description="Test connection (list the provider's models)", permissions=["manage"])
    def test_connection(self, request, queryset):
        for provider in queryset:
            try:
                names = provider_models(provider)
            except Exception as exc:
                # What the upstream said may echo the key or internal details: the log has it.
                error_id = uuid.uuid4().hex[:12]
                logger.warning("Test connection of provider %s failed (error %s)", provider, error_id, exc_info=True)
                self.message_user(
                    request,
                    f"{provider}: failed ({exc.__class__.__name__}); details in the log under error {error_id}.",
                    messages.ERROR,
                )
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


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Train a classifier on a Celery worker; the list shows each run's progress."""

    list_display = ("name", "data_path", "base", "status", "progress_percent", "result", "message", "created_at")
    list_filter = ("status",)
    fields = ("data_path", "base", "name", "version", "label_names", "limit", "holdout")
    readonly_fields = ("status", "progress", "message", "result", "requested_by", "created_at", "finished_at")

    @admin.display(description="Progress")
    def progress_percent(self, obj):
        return f"{obj.progress}%"

    def get_fields(self, request, obj=None):
        return self.fields + (self.readonly_fields if obj else ())

    def get_readonly_fields(self, request, obj=None):
        # A run is a record of what was trained: fixed once submitted.
        return self.fields + self.readonly_fields if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing on a submitted run is editable
        obj.requested_by = audit.actor_of(request.user)
        super().save_model(request, obj, form, change)
        # Enqueue once the row is committed, or the worker could look for it before it exists.
        transaction.on_commit(lambda: train_classifier_run.delay(obj.pk))
        messages.info(request, "Training queued; this list shows its progress (reload to update).")
