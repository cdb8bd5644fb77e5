from django.contrib import admin
from django.db.models import Count
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from gateway.keys.services import api_key_create, api_key_revoke
from gateway.limits import usage
from gateway.models import APIKey, AuditEvent, BudgetAlert, FilterPattern, RequestLog, Team
from gateway.record import audit

_LIMIT_FIELDS = (
    "requests_per_minute",
    "tokens_per_minute",
    "max_in_flight",
    "budget_usd",
    "budget_period",
    "budget_alert_percent",
)


def _rate(used, limit) -> str:
    if limit is None:
        return "no limit"
    return f"{'?' if used is None else used} / {limit}"


def _budget(current: usage.Usage) -> str:
    if current.budget_usd is None:
        return "no budget" if current.spent_usd is None else f"{current.spent_usd:.4f} USD (no budget)"
    text = f"{current.spent_usd:.4f} / {current.budget_usd:.4f} USD ({current.budget_share:.0%})"
    if current.past_alert:
        return format_html(
            '<strong style="color:#ba2121">{} — past the {}% alert</strong>', text, current.alert_percent
        )
    return text


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "requests_per_minute", "tokens_per_minute", "budget_use", "budget_period", "keys")
    search_fields = ("name",)
    readonly_fields = ("spend_this_period", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "created_at", "updated_at")}),
        (
            "Limits and budget",
            {
                "fields": (*_LIMIT_FIELDS, "spend_this_period"),
                "description": "Rate limits here are the defaults of the team's keys; the budget caps the "
                "spend of all its keys together. Changes apply from the next request, in every process.",
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(key_count=Count("api_keys"))

    @admin.display(description="Spend this period")
    def budget_use(self, obj):
        return _budget(usage.team_usage(obj))

    @admin.display(description="Spend this period")
    def spend_this_period(self, obj):
        return _budget(usage.team_usage(obj, unbudgeted_spend=True)) if obj.pk else "—"

    @admin.display(description="Keys", ordering="key_count")
    def keys(self, obj):
        return obj.key_count


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "key_prefix",
        "team",
        "owner",
        "state",
        "requests_this_minute",
        "tokens_this_minute",
        "budget_use",
        "last_used_at",
    )
    list_filter = ("is_active", ("revoked_at", admin.EmptyFieldListFilter), "team", "created_at")
    list_select_related = ("team", "owner")
    search_fields = ("name", "prefix", "owner__username", "team__name")
    readonly_fields = (
        "key_prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
        "requests_this_minute",
        "tokens_this_minute",
        "spend_this_period",
        "history",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "team",
                    "owner",
                    "is_active",
                    "expires_at",
                    "allowed_endpoints",
                    "allowed_models",
                    "may_pin_drafts",
                    "key_prefix",
                    "created_at",
                    "last_used_at",
                    "revoked_at",
                )
            },
        ),
        (
            "Limits and budget",
            {
                "fields": (*_LIMIT_FIELDS, "requests_this_minute", "tokens_this_minute", "spend_this_period"),
                "description": "Empty rate limits take the team's, else the global default. The key's budget "
                "and its team's are separate caps; a request must fit both.",
            },
        ),
        ("Output filter", {"fields": ("content_filter",)}),
        ("History", {"fields": ("history",)}),
    )
    actions = ["revoke_keys"]

    @admin.display(description="Key")
    def key_prefix(self, obj):
        return f"gw_{obj.prefix}…" if obj.prefix else "(shown once, after saving)"

    @admin.display(description="State")
    def state(self, obj):
        reason = obj.refusal_reason()
        return "usable" if reason is None else reason.removeprefix("This API key ").removesuffix(".")

    @admin.display(description="Requests this minute")
    def requests_this_minute(self, obj):
        if not obj.pk:
            return "—"
        current = self._usage(obj)
        return _rate(current.requests_this_minute, current.requests_per_minute)

    @admin.display(description="Tokens this minute")
    def tokens_this_minute(self, obj):
        if not obj.pk:
            return "—"
        current = self._usage(obj)
        return _rate(current.tokens_this_minute, current.tokens_per_minute)

    @admin.display(description="Spend this period")
    def budget_use(self, obj):
        return _budget(self._usage(obj))

    @admin.display(description="Spend this period")
    def spend_this_period(self, obj):
        return _budget(usage.key_usage(obj, unbudgeted_spend=True)) if obj.pk else "—"

    @admin.display(description="Creation and revocation")
    def history(self, obj):
        # A read-only field rather than an inline like the versions': an inline would make every
        # post of this form carry the inline's management data, though nothing in it is editable.
        events = obj.audit_events.all() if obj.pk else []
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    formats.localize(timezone.template_localtime(e.created_at)),
                    e.actor,
                    e.get_action_display(),
                    e.message,
                )
                for e in events
            ),
        )
        return format_html("<table>{}</table>", rows) if events else "—"

    @staticmethod
    def _usage(obj) -> usage.Usage:
        # Three columns read it; one lookup per row and page.
        if not hasattr(obj, "_usage"):
            obj._usage = usage.key_usage(obj)
        return obj._usage

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, full_key = api_key_create(
            name=obj.name,
            owner=obj.owner,
            team=obj.team,
            endpoints=obj.allowed_endpoints,
            models=obj.allowed_models,
            expires_at=obj.expires_at,
            is_active=obj.is_active,
            requests_per_minute=obj.requests_per_minute,
            tokens_per_minute=obj.tokens_per_minute,
            max_in_flight=obj.max_in_flight,
            may_pin_drafts=obj.may_pin_drafts,
            budget_usd=obj.budget_usd,
            budget_period=obj.budget_period,
            budget_alert_percent=obj.budget_alert_percent,
            actor=audit.actor_of(request.user),
        )
        # The admin's log entry and redirect read the form's instance: make it the created row.
        obj.pk = key.pk
        obj.refresh_from_db()
        request._new_api_key = full_key  # for response_add, this request only

    def response_add(self, request, obj, post_url_continue=None):
        """The new key's secret, on this response alone: never in a message (a cookie), never
        stored, never cached; the page cannot be fetched again."""
        full_key = getattr(request, "_new_api_key", None)
        if full_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Copy the new API key",
            "key": obj,
            "full_key": full_key,
        }
        response = TemplateResponse(request, "admin/gateway/apikey/new_key.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected keys (permanent)", permissions=["change"])
    def revoke_keys(self, request, queryset):
        actor = audit.actor_of(request.user)
        revoked = sum(api_key_revoke(key=key, actor=actor) for key in queryset.filter(revoked_at__isnull=True))
        self.message_user(request, f"Revoked {revoked} key(s); they are refused from the next request on.")


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "method",
        "endpoint",
        "status_code",
        "error_type",
        "key_prefix",
        "model_name",
        "version",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "cache_hit",
        "variant",
        "cost_saved_usd",
    )
    # Only columns whose values the gateway or an operator chooses: a filter lists every distinct
    # value (a SELECT DISTINCT over the log), and callers choose paths and model names freely.
    # Those are searched instead: an exact model name or key prefix, or the start of a path.
    list_filter = (
        "status_code", "team", "provider", "error_type", "cache_hit", "fallback_used",
        "truncated", "price_missing", "variant", ("shadow_of", admin.EmptyFieldListFilter),
    )  # fmt: skip
    search_fields = ("=request_id", "=key_prefix", "=model_name", "^endpoint")
    date_hierarchy = "created_at"
    # Counting tens of millions of rows on every page view is the slow part of a big log.
    show_full_result_count = False
    list_select_related = ("api_key", "model_version")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    """Read-only: alerts are raised by traffic (gateway/limits/budgets.py), once per owner and period."""

    list_display = ("created_at", "api_key", "team", "period_start", "threshold_percent", "spent_usd", "budget_usd")
    list_filter = ("team", "period_start")
    list_select_related = ("api_key", "team")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(FilterPattern)
class FilterPatternAdmin(admin.ModelAdmin):
    """Operators' patterns for the content filter; SSNs and card numbers are built in."""

    list_display = ("name", "pattern", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "pattern", "description")


admin.site.site_header = "AI Gateway administration"
admin.site.index_title = f"Operations ({timezone.get_current_timezone_name()})"


class AuditEventInline(admin.TabularInline):
    """Read-only history of a version or an experiment; subclasses set fk_name."""

    model = AuditEvent
    fields = ("created_at", "actor", "action", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "history entry"
    verbose_name_plural = "history (promotions, archives, experiments, weight changes)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
