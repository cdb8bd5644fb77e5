from django.contrib import admin, messages
from django.utils import timezone

from gateway.models import APIKey, RequestLog


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "key_prefix", "owner", "state", "expires_at", "last_used_at", "created_at")
    list_filter = ("is_active", ("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "owner__username")
    readonly_fields = ("key_prefix", "created_at", "last_used_at", "revoked_at")
    fields = (
        "name",
        "owner",
        "is_active",
        "expires_at",
        "allowed_endpoints",
        "allowed_models",
        "key_prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ["revoke_keys"]

    @admin.display(description="Key")
    def key_prefix(self, obj):
        return f"gw_{obj.prefix}…" if obj.prefix else "(shown once, after saving)"

    @admin.display(description="State")
    def state(self, obj):
        reason = obj.refusal_reason()
        return "usable" if reason is None else reason.removeprefix("This API key ").removesuffix(".")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        full_key = obj.set_new_secret()
        super().save_model(request, obj, form, change)
        messages.warning(
            request,
            f"The new API key is {full_key} — copy it now: it is shown this once and stored only as a hash.",
        )

    @admin.action(description="Revoke selected keys (permanent)")
    def revoke_keys(self, request, queryset):
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoke()
            revoked += 1
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
    )
    list_filter = (
        "status_code", "endpoint", "model_name", "provider", "error_type", "cache_hit", "fallback_used", "truncated",
        "price_missing",
    )  # fmt: skip
    search_fields = ("=request_id", "=key_prefix")
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


admin.site.site_header = "AI Gateway administration"
admin.site.index_title = f"Operations ({timezone.get_current_timezone_name()})"
