import csv
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from observability import rollups
from observability.dashboards import PAGES
from observability.dashboards.components import Table
from observability.filters import filter_form

# The pages in their tab order: (page id, URL name).
TABS = [
    ("overview", "dashboards-overview"),
    ("cost", "dashboards-cost"),
    ("models", "dashboards-models"),
    ("keys", "dashboards-keys"),
]
_REFRESH_ON_VIEW_EVERY = timedelta(minutes=1)


def dashboard(request, page: str):
    """One dashboard for the filters in the query string; `?export=<table id>` gives that table as CSV.
    Routed through the admin site's view wrapper (observability/urls.py): staff, logged in."""
    if not request.user.has_perm("observability.view_dashboards"):
        raise PermissionDenied
    if page not in PAGES:
        raise Http404
    if settings.GATEWAY_REFRESH_ROLLUPS_ON_VIEW:
        _refresh_if_stale()
    form = filter_form(request.GET)
    if not form.is_valid():
        return _render(request, page, form, None, status=400)
    filters = form.filters()
    built = PAGES[page](filters)
    export = request.GET.get("export")
    if export:
        table = built.table(export)
        if table is None:
            raise Http404(f"No table {export!r} on this dashboard.")
        return _csv(table, f"{page}-{table.id}-{filters.start:%Y%m%d%H}-{filters.end:%Y%m%d%H}.csv")
    return _render(request, page, form, built, filters=filters)


def _render(request, page, form, built, filters=None, status=200):
    query = request.GET.copy()
    query.pop("export", None)
    context = {
        **admin.site.each_context(request),
        "title": f"Dashboards: {built.title if built else page.capitalize()}",
        "page_id": page,
        "page": built,
        "form": form,
        "filters": filters,
        "query": query.urlencode(),
        "tabs": TABS,
        "refreshed_at": rollups.last_refreshed_at(),
    }
    return render(request, "observability/dashboard.html", context, status=status)


def _csv(table: Table, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([_inert(cell) for cell in table.header()])
    writer.writerows([_inert(cell) for cell in row] for row in table.cells())
    return response


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    """The cell as text a spreadsheet shows rather than runs: a leading quote before a formula.
    Numbers (a negative one starts with "-") are left as they are."""
    if not cell.startswith(_FORMULA_STARTS):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell


def _refresh_if_stale() -> None:
    refreshed_at = rollups.last_refreshed_at()
    if refreshed_at is None or timezone.now() - refreshed_at > _REFRESH_ON_VIEW_EVERY:
        rollups.refresh()
