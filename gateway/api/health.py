"""Liveness and readiness probes; no key needed and no log row written."""

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from inference import pool


@require_GET
def health(request):
    """Liveness: the process answers (no database or cache round trip). Also says whether
    this process has loaded a model yet; /ready checks each one."""
    return JsonResponse({"status": "healthy", "model_loaded": pool.has_loaded_models()})


@require_GET
def ready(request):
    """Readiness: database and every production model loaded in this process (at any revision;
    an edited version reloads on its next request). A production version the process does not
    hold yet starts loading here, so a newly promoted version takes each node out of its
    balancer only for its load time, not until traffic that the balancer no longer sends.

    The cache is reported but not required: without Redis the gateway still serves (limits
    follow their fail-open/closed settings, the response cache is skipped), and a probe that
    failed on Redis would take every instance out of the load balancer at once.
    """
    checks = {"database": _check_database(), "cache": _check_cache()}
    versions = pool.serving_versions() if checks["database"] == "ok" else []
    checks["models"] = {str(v): "loaded" if pool.is_loaded(v) else "not loaded" for v in versions}
    for version in versions:
        if not pool.is_loaded(version):
            pool.load_in_background(version)
    ok = checks["database"] == "ok" and all(state == "loaded" for state in checks["models"].values())
    return JsonResponse({"status": "ready" if ok else "not ready", "checks": checks}, status=200 if ok else 503)


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"


def _check_cache() -> str:
    try:
        cache.set("gateway:ready-probe", "1", 5)
        return "ok" if cache.get("gateway:ready-probe") == "1" else "error: value not read back"
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
