from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from experiments import services, statistics
from experiments.models import Experiment, ExperimentStatus, Feedback, Variant
from gateway.admin import AuditEventInline
from gateway.record import audit


class VariantFormSet(forms.BaseInlineFormSet):
    """Weights are edited inline; the set of variants must make sense as a whole."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not kept:
            return  # a draft may be saved before its variants are added
        specs = [
            services.VariantSpec(
                f.cleaned_data["name"],
                f.cleaned_data["model_version"],
                f.cleaned_data["mode"],
                f.cleaned_data["weight"],
                f.cleaned_data["is_control"],
            )
            for f in kept
        ]
        problems = services.variant_problems(self.instance.model_name, specs)
        if problems:
            raise ValidationError(problems)


class VariantInline(admin.TabularInline):
    model = Variant
    formset = VariantFormSet
    fields = ("name", "model_version", "mode", "weight", "is_control")
    extra = 0
    min_num = 2


class ExperimentHistoryInline(AuditEventInline):
    fk_name = "experiment"


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "model_name", "status", "coverage", "variant_split", "started_at", "statistics_link")
    list_filter = ("status", "model_name")
    search_fields = ("name", "model_name")
    fields = (
        "name",
        "model_name",
        "description",
        "status",
        "coverage",
        "salt",
        "guardrail_enabled",
        "guardrail_min_requests",
        "guardrail_p_value",
        "paused_reason",
        "started_at",
        "stopped_at",
    )
    inlines = [VariantInline, ExperimentHistoryInline]
    actions = ["start", "pause", "stop", "promote_winner"]

    def get_readonly_fields(self, request, obj=None):
        # Status changes go through the actions (validated, audited); the salt and model name
        # are fixed once traffic has been assigned with them.
        fixed = ("status", "paused_reason", "started_at", "stopped_at")
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            fixed += ("salt", "model_name")
        return fixed

    @admin.display(description="Split")
    def variant_split(self, obj):
        return ", ".join(
            f"{v.name} {v.weight}%{' (shadow)' if v.is_shadow else ''}" for v in obj.variants.order_by("pk")
        )

    @admin.display(description="Statistics")
    def statistics_link(self, obj):
        return format_html(
            '<a href="{}">statistics</a>', reverse("admin:experiments_experiment_statistics", args=[obj.pk])
        )

    # --- actions: thin wrappers over experiments.services ---

    def _each(self, request, queryset, change, done: str):
        for experiment in queryset:
            try:
                change(experiment, actor=audit.actor_of(request.user))
            except services.ExperimentError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{experiment}: {done}.")

    @admin.action(description="Start (or resume) selected experiments", permissions=["change"])
    def start(self, request, queryset):
        self._each(request, queryset, services.experiment_start, "running")

    @admin.action(description="Pause selected experiments (traffic goes back to production)", permissions=["change"])
    def pause(self, request, queryset):
        self._each(request, queryset, services.experiment_pause, "paused if it was running")

    @admin.action(description="Stop selected experiments for good", permissions=["change"])
    def stop(self, request, queryset):
        self._each(request, queryset, services.experiment_stop, "stopped")

    def has_promote_permission(self, request, obj=None):
        # The winner's version goes to production: that is a change to the versions too.
        return self.has_change_permission(request, obj) and request.user.has_perm("inference.change_modelversion")

    @admin.action(description="Promote the winner to production and stop", permissions=["promote"])
    def promote_winner(self, request, queryset):
        self._each(request, queryset, services.experiment_promote_winner, "winner promoted, experiment stopped")

    # --- audit of edits: weights, coverage, variants ---

    def save_model(self, request, obj, form, change):
        request._experiment_changes = (
            [f"coverage {form.initial.get('coverage')}% → {obj.coverage}%"]
            if change and "coverage" in form.changed_data
            else []
        )
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        if formset.model is Variant and change:
            request._experiment_changes += _variant_changes(formset)
        super().save_formset(request, form, formset, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change:
            services.experiment_record_changes(
                form.instance, actor=audit.actor_of(request.user), changes=request._experiment_changes
            )

    # --- the statistics page ---

    def get_urls(self):
        view = self.admin_site.admin_view(self.statistics_view)
        return [
            path("<path:object_id>/statistics/", view, name="experiments_experiment_statistics"),
            *super().get_urls(),
        ]

    def statistics_view(self, request, object_id):
        experiment = get_object_or_404(Experiment, pk=object_id)
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Statistics: {experiment}",
            "experiment": experiment,
            "stats": statistics.for_experiment(experiment),
            "srm_threshold": statistics.SRM_P_VALUE,
        }
        return TemplateResponse(request, "admin/experiments/experiment/statistics.html", context)


def _variant_changes(formset) -> list[str]:
    changes = []
    for f in formset.forms:
        if not f.has_changed() and not f.cleaned_data.get("DELETE"):
            continue
        name = f.cleaned_data.get("name") or f.initial.get("name")
        if f.cleaned_data.get("DELETE"):
            changes.append(f"variant {name} removed")
        elif f.instance.pk is None:
            changes.append(f"variant {name} added at weight {f.cleaned_data['weight']}%")
        else:
            for field in f.changed_data:
                before = f.initial.get(field)
                if field == "model_version":
                    before = f.fields[field].queryset.filter(pk=before).first()
                changes.append(f"{name}: {field} {before} → {f.cleaned_data.get(field)}")
    return changes


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("request_uuid", "label", "score", "created_at")
    search_fields = ("=request_uuid",)
    readonly_fields = ("request", "request_uuid", "label", "score", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False
