"""Liveness and readiness probes; no key needed and no log row written."""

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from gateway import db
from gateway.record.log_writer import writer
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

    While the database is out of reach the process answers "degraded" with 200 as long as its
    request log spool has room (docs/reliability.md); a full spool is
    "not ready" (503). The cache is reported but not required: without Redis the gateway still serves (limits
    follow their fail-open/closed settings, the response cache is skipped), and a probe that
    failed on Redis would take every instance out of the load balancer at once.
    """
    checks = {"database": _check_database(), "cache": _check_cache(), "request_log": writer.state()}
    database_ok = checks["database"] == "ok"
    versions = pool.serving_versions() if database_ok else []
    checks["models"] = {str(v): "loaded" if pool.is_loaded(v) else "not loaded" for v in versions}
    for version in versions:
        if not pool.is_loaded(version):
            pool.load_in_background(version)
    if writer.refuses_requests():
        status = "not ready"  # billable requests are refused: send them to another node
    elif database_ok:
        status = "ready" if all(state == "loaded" for state in checks["models"].values()) else "not ready"
    else:
        # Degraded: what the snapshot holds is served and log rows are spooled; taking every
        # node out of the balancer at once for a shared database's outage would serve nothing.
        status = "degraded"
    return JsonResponse({"status": status, "checks": checks}, status=503 if status == "not ready" else 200)


def _check_database() -> str:
    if db.unreachable():  # the log writer probes it every second; a probe must not wait on the pool
        return "error: unreachable"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        db.set_reachable(False)
        return f"error: {exc.__class__.__name__}"


def _check_cache() -> str:
    try:
        cache.set("gateway:ready-probe", "1", 5)
        return "ok" if cache.get("gateway:ready-probe") == "1" else "error: value not read back"
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
