import logging
import uuid

from django.contrib import admin, messages
from django.db import models, transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from gateway.admin import AuditEventInline
from gateway.record import audit
from inference.evaluation import side_by_side
from inference.models import (
    Evaluation,
    FallbackChain,
    FallbackStep,
    ModelVersion,
    Provider,
    RoutingRule,
    Status,
    TrainingRun,
)
from inference.provider_calls import provider_models
from inference.services import model_version_archive, model_version_promote, model_version_register
from inference.tasks import train_classifier_run

logger = logging.getLogger(__name__)


class VersionHistoryInline(AuditEventInline):
    fk_name = "model_version"


# --- evaluations: listed on their version, each readable in full, two compared side by side ---

EVALUATION_SUMMARY = ("data_name", "examples", "accuracy", "macro_f1", "ece", "throughput", "created_at")


class EvaluationInline(admin.TabularInline):
    model = Evaluation
    fields = ("link", *EVALUATION_SUMMARY)
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Evaluation")
    def link(self, obj):
        return format_html('<a href="{}">#{}</a>', reverse("admin:inference_evaluation_change", args=[obj.pk]), obj.pk)

    @admin.display(description="Data")
    def data_name(self, obj):
        return obj.data_name


def _compare_url(first: Evaluation, second: Evaluation) -> str:
    return f"{reverse('admin:inference_evaluation_compare')}?first={first.pk}&second={second.pk}"


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("pk", "version", *EVALUATION_SUMMARY)
    list_filter = ("version__name",)
    search_fields = ("version__name", "version__version", "data_path")
    fields = (
        "version", "data_path", "split", "data_sha256", "examples", "accuracy", "macro_f1", "ece", "throughput",
        "per_label", "confusion", "calibration", "created_by", "created_at",
    )  # fmt: skip
    readonly_fields = fields
    actions = ["compare"]

    def has_add_permission(self, request):
        return False  # evaluations come from evaluatemodel and training runs

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Data")
    def data_name(self, obj):
        return obj.data_name

    @admin.display(description="Per label")
    def per_label(self, obj):
        return _per_label_table(obj)

    @admin.display(description="Confusion matrix (rows: true label, columns: predicted)")
    def confusion(self, obj):
        return _confusion_table(obj)

    @admin.display(description="Calibration (confidence bins)")
    def calibration(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (f"{b['from']:.1f}-{b['to']:.1f}", b["count"], f"{b['accuracy']:.3f}", f"{b['confidence']:.3f}")
                for b in obj.report["calibration"]
            ),
        )
        head = "<tr><th>confidence</th><th>examples</th><th>accuracy</th><th>mean confidence</th></tr>"
        return format_html("<table>{}{}</table>", format_html(head), rows)

    @admin.action(description="Compare side by side (select two)", permissions=["view"])
    def compare(self, request, queryset):
        if queryset.count() != 2:
            self.message_user(request, "Select exactly two evaluations to compare.", messages.ERROR)
            return None
        first, second = queryset.order_by("created_at")
        return HttpResponseRedirect(_compare_url(first, second))

    def get_urls(self):
        view = self.admin_site.admin_view(self.compare_view)
        return [path("compare/", view, name="inference_evaluation_compare"), *super().get_urls()]

    def compare_view(self, request):
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        first = get_object_or_404(Evaluation.objects.select_related("version"), pk=request.GET.get("first"))
        second = get_object_or_404(Evaluation.objects.select_related("version"), pk=request.GET.get("second"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{first.version} vs {second.version}",
            "opts": self.model._meta,
            "first": first,
            "second": second,
            "same_data": first.data_sha256 == second.data_sha256 and first.split == second.split,
            "rows": side_by_side(first, second),
            "confusions": [(first, _confusion_table(first)), (second, _confusion_table(second))],
        }
        return TemplateResponse(request, "admin/inference/evaluation/compare.html", context)


def _per_label_table(evaluation: Evaluation):
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (label, f"{f['precision']:.4f}", f"{f['recall']:.4f}", f"{f['f1']:.4f}", f["support"])
            for label, f in evaluation.report["per_label"].items()
        ),
    )
    head = "<tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
    return format_html("<table>{}{}</table>", format_html(head), rows)


def _confusion_table(evaluation: Evaluation):
    labels = evaluation.report["confusion"]["labels"]
    head = format_html_join("", "<th>{}</th>", ((label,) for label in labels))
    rows = format_html_join(
        "",
        "<tr><th>{}</th>{}</tr>",
        (
            (label, format_html_join("", "<td>{}</td>", ((count,) for count in row)))
            for label, row in zip(labels, evaluation.report["confusion"]["matrix"], strict=True)
        ),
    )
    return format_html("<table><tr><th></th>{}</tr>{}</table>", head, rows)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "task", "backend", "runtime", "status", "priced", "promoted_at", "created_at")
    list_filter = ("status", "task", "backend", "runtime", "name")
    search_fields = ("name", "version", "source", "notes")
    readonly_fields = ("created_at", "updated_at", "promoted_at", "metrics", "data_sha256")
    fieldsets = (
        (None, {"fields": ("name", "version", "task", "backend", "status", "notes")}),
        ("Local model", {"fields": ("source", "labels", "config", "runtime")}),
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
    inlines = [VersionHistoryInline, EvaluationInline]
    actions = ["promote", "archive", "compare_versions"]

    @admin.display(boolean=True, description="Priced")
    def priced(self, obj):
        # An unpriced version is costed $0 with the row flagged: make it visible here.
        return obj.is_priced

    @admin.action(description="Compare evaluations side by side (select two versions)", permissions=["view"])
    def compare_versions(self, request, queryset):
        """The latest evaluations of two versions, on the same data where they share one."""
        versions = list(queryset[:3])
        if len(versions) != 2:
            self.message_user(request, "Select exactly two versions to compare.", messages.ERROR)
            return None
        first, second = (list(v.evaluations.all()) for v in versions)
        if not first or not second:
            missing = ", ".join(str(v) for v, e in zip(versions, (first, second), strict=True) if not e)
            self.message_user(request, f"No evaluation of {missing} yet: run evaluatemodel.", messages.ERROR)
            return None
        shared = [(a, b) for a in first for b in second if a.data_sha256 == b.data_sha256 and a.split == b.split]
        pair = shared[0] if shared else (first[0], second[0])
        return HttpResponseRedirect(_compare_url(*pair))

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

    list_display = (
        "name", "method", "data_path", "base", "status", "progress_percent", "result", "message", "created_at",
    )  # fmt: skip
    list_filter = ("status", "method")
    fields = (
        "data_path",
        "base",
        "name",
        "version",
        "label_names",
        "limit",
        "holdout",
        "method",
        "epochs",
        "max_minutes",
    )
    readonly_fields = ("status", "progress", "message", "result", "requested_by", "created_at", "finished_at")

    @admin.display(description="Progress")
    def progress_percent(self, obj):
        return format_html('<progress value="{}" max="100"></progress> {}%', obj.progress, obj.progress)

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
