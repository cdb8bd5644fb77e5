import csv
import io
import json
import uuid
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission
from django.db.models import Count, Sum
from django.http import QueryDict
from django.test import override_settings

from gateway.limits import admission, budgets
from gateway.models import RequestLog, Team
from gateway.record.context import RequestContext
from observability import rollups
from observability.filters import filter_form
from observability.seeding import seed_request_logs
from tests.factories import APIKeyFactory, RequestLogFactory, StaffUserFactory, TeamFactory

pytestmark = pytest.mark.django_db

PAGES = ["/admin/dashboards/", "/admin/dashboards/cost/", "/admin/dashboards/models/", "/admin/dashboards/keys/"]


class _Tables(HTMLParser):
    """The text of every <table data-table="..."> on a page: {id: [header, *rows]}."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = self._row = self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-table" in attrs:
            self._table = self.tables.setdefault(attrs["data-table"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def staff_user(db):
    """An operator allowed to open the dashboards (staff alone is not enough)."""
    user = StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_dashboards"))
    return user


@pytest.fixture
def history(default_models):
    return seed_request_logs(rows=1500, days=10, keys=6, seed=3)


def _period_rows(query: str = ""):
    form = filter_form(QueryDict(query))
    assert form.is_valid()
    filters = form.filters()
    return RequestLog.objects.filter(created_at__gte=filters.start, created_at__lt=filters.end)


def _a_served_model() -> str:
    """The most used model name in the seeded history (the seed decides which)."""
    return (
        RequestLog.objects.exclude(model_version=None)
        .values_list("model_name", flat=True)
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )


def _chart_configs(html: str) -> dict[str, dict]:
    configs = {}
    for chunk in html.split('<script id="chart-config-')[1:]:
        chart_id, _, rest = chunk.partition('"')
        configs[chart_id] = json.loads(rest.partition(">")[2].partition("</script>")[0])
    return configs


def test_dashboards_are_for_staff_only(client, db):
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    client.force_login(StaffUserFactory(is_staff=False))
    assert client.get(PAGES[0]).status_code == 302


def test_admin_index_links_every_dashboard(staff_client):
    html = staff_client.get("/admin/").content.decode()

    for path in PAGES:
        assert f'href="{path}"' in html


@pytest.mark.parametrize("path", PAGES)
def test_each_dashboard_shows_charts_and_tables_with_data(staff_client, history, path):
    response = staff_client.get(path)

    assert response.status_code == 200
    html = response.content.decode()
    charts = _chart_configs(html)
    assert charts
    for config in charts.values():
        assert config["labels"]
        assert any(any(value for value in dataset["data"]) for dataset in config["datasets"])
    tables = _Tables(html).tables
    assert tables
    assert all(len(rows) > 1 for rows in tables.values())
    assert "chart.umd.min.js" in html  # served from our static files, not a CDN


def test_overview_figures_and_series_add_up_to_the_raw_log(staff_client, history):
    html = staff_client.get("/admin/dashboards/").content.decode()
    raw = _period_rows()

    series = _Tables(html).tables["series"]
    header, rows = series[0], series[1:]
    assert len(rows) == 7  # one per day of the default period, quiet days included
    assert sum(int(row[header.index("Requests")]) for row in rows) == raw.count()
    assert sum(int(row[header.index("5xx")]) for row in rows) == raw.filter(status_code__gte=500).count()
    assert f'<div class="figure-value">{raw.count()}</div>' in html
    raw_cost = raw.aggregate(total=Sum("cost_usd"))["total"]
    assert sum(Decimal(row[header.index("Cost (USD)")]) for row in rows) == pytest.approx(raw_cost, abs=Decimal("1e-5"))


def test_cost_by_key_matches_the_raw_log(staff_client, history):
    html = staff_client.get("/admin/dashboards/cost/?period=30d").content.decode()
    table = _Tables(html).tables["keys"]
    header, rows = table[0], table[1:]
    raw = dict(
        _period_rows("period=30d").values_list("key_prefix").annotate(total=Sum("cost_usd")).order_by("key_prefix")
    )

    shown = {row[0].removeprefix("gw_").removesuffix("…"): Decimal(row[header.index("Cost (USD)")]) for row in rows}
    assert shown == {prefix: cost.quantize(Decimal("0.000001")) for prefix, cost in raw.items()}
    costs = [Decimal(row[header.index("Cost (USD)")]) for row in rows]
    assert costs == sorted(costs, reverse=True)  # top spenders first


@pytest.mark.parametrize("path", PAGES)
def test_csv_export_of_every_table_matches_the_page(staff_client, history, path):
    query = f"period=30d&model={_a_served_model()}"
    tables = _Tables(staff_client.get(f"{path}?{query}").content.decode()).tables

    for table_id, rows in tables.items():
        response = staff_client.get(f"{path}?{query}&export={table_id}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "attachment" in response["Content-Disposition"]
        exported = list(csv.reader(io.StringIO(response.content.decode())))
        shown = [row for row in rows if not (len(row) == 1 and row[0].startswith("Nothing logged"))]
        assert exported == shown, table_id


def test_csv_export_escapes_cells_a_spreadsheet_would_run_as_formulas(staff_client, db):
    names = ["=cmd|' /C calc'!A0", "+SUM(A1)", "-2+3", "@SUM(A1)", "\tTAB", "plain"]
    for name in names:
        key = APIKeyFactory(team=TeamFactory(name=name))
        RequestLogFactory(api_key=key, key_prefix=key.prefix, team=key.team, cost_usd=Decimal("0.5"))
    rollups.refresh()

    response = staff_client.get("/admin/dashboards/cost/?period=7d&export=teams")

    exported = list(csv.reader(io.StringIO(response.content.decode())))
    teams = {row[0] for row in exported[1:]}
    assert teams >= {"'=cmd|' /C calc'!A0", "'+SUM(A1)", "'-2+3", "'@SUM(A1)", "'\tTAB", "plain"}
    # Numbers stay numbers, negative ones included.
    assert all(cell.lstrip("-").replace(".", "", 1).isdigit() for row in exported[1:] for cell in row[1:] if cell)


def test_filters_in_the_url_narrow_every_table(staff_client, history):
    prefix = RequestLog.objects.values_list("key_prefix", flat=True).first()

    tables = _Tables(staff_client.get(f"/admin/dashboards/keys/?period=30d&key={prefix}").content.decode()).tables

    assert [row[0] for row in tables["keys"][1:]] == [f"gw_{prefix}…"]
    requests = int(tables["keys"][1][tables["keys"][0].index("Requests")])
    assert requests == _period_rows("period=30d").filter(key_prefix=prefix).count()


def test_model_filter_keeps_only_that_model(staff_client, history):
    model = _a_served_model()

    tables = _Tables(staff_client.get(f"/admin/dashboards/models/?period=30d&model={model}").content.decode()).tables

    assert {row[0] for row in tables["versions"][1:]} == {model}


def test_last_24_hours_are_shown_by_hour(staff_client, default_models):
    RequestLogFactory(key_prefix="abcdefgh")
    rollups.refresh()

    tables = _Tables(staff_client.get("/admin/dashboards/?period=24h").content.decode()).tables

    rows = tables["series"][1:]
    assert len(rows) == 24
    assert rows[-1][1] == "1"  # the current hour holds the request


def test_invalid_filters_are_refused_with_a_message(staff_client, db):
    for query in ("start=2026-03-10", "start=2026-03-10&end=2026-03-01", "period=90d&bucket=hour", "period=1y"):
        response = staff_client.get(f"/admin/dashboards/?{query}")
        assert response.status_code == 400, query
        assert b"errornote" in response.content


def test_unknown_export_is_not_found(staff_client, db):
    assert staff_client.get("/admin/dashboards/?export=nope").status_code == 404


def test_without_a_scheduler_opening_a_dashboard_refreshes_the_rollups(staff_client, db):
    RequestLogFactory()
    RequestLogFactory(status_code=500, error_type="server_error")

    with override_settings(GATEWAY_REFRESH_ROLLUPS_ON_VIEW=True):
        html = staff_client.get("/admin/dashboards/?period=24h").content.decode()

    assert '<div class="figure-value">2</div>' in html


def test_team_filter_and_cost_by_team_match_the_raw_log(staff_client, history):
    raw = dict(
        _period_rows("period=30d")
        .exclude(team=None)
        .values_list("team__name")
        .annotate(total=Sum("cost_usd"))
        .order_by("team__name")
    )
    team = max(raw, key=raw.get)

    cost = _Tables(staff_client.get("/admin/dashboards/cost/?period=30d").content.decode()).tables["teams"]
    shown = {row[0]: Decimal(row[cost[0].index("Cost (USD)")]) for row in cost[1:] if row[0] != "(no team)"}
    assert shown == {name: total.quantize(Decimal("0.000001")) for name, total in raw.items()}

    html = staff_client.get(f"/admin/dashboards/?period=30d&team={team}").content.decode()
    assert f'<div class="figure-value">{_period_rows("period=30d").filter(team__name=team).count()}</div>' in html


def test_keys_and_teams_show_spend_against_their_budgets(staff_client, history):
    team = Team.objects.filter(api_keys__isnull=False).distinct().first()
    team.budget_usd, team.budget_period = Decimal("2"), "month"
    team.save()
    key = team.api_keys.order_by("name").first()
    key.budget_usd, key.budget_period, key.requests_per_minute = Decimal("0.5"), "day", 120
    key.save()

    tables = _Tables(staff_client.get("/admin/dashboards/keys/?period=30d").content.decode()).tables

    start, end = budgets.period_bounds("month")
    team_spent = RequestLog.objects.filter(team=team, created_at__gte=start, created_at__lt=end).aggregate(
        total=Sum("cost_usd")
    )["total"] or Decimal(0)
    teams = tables["teams"]
    (team_row,) = [row for row in teams[1:] if row[0] == team.name]
    assert team_row[teams[0].index("Budget (USD)")] == "2.000000"
    assert team_row[teams[0].index("Budget period")] == "Calendar month (UTC)"
    assert Decimal(team_row[teams[0].index("Spent this period (USD)")]) == team_spent.quantize(Decimal("0.000001"))
    assert team_row[teams[0].index("Budget used (%)")] == f"{float(team_spent / 2) * 100:.2f}"

    start, end = budgets.period_bounds("day")
    key_spent = RequestLog.objects.filter(key_prefix=key.prefix, created_at__gte=start, created_at__lt=end).aggregate(
        total=Sum("cost_usd")
    )["total"] or Decimal(0)
    keys = tables["keys"]
    (key_row,) = [row for row in keys[1:] if row[0] == f"gw_{key.prefix}…"]
    assert key_row[keys[0].index("Team")] == team.name
    assert key_row[keys[0].index("Requests/min limit")] == "120"
    assert Decimal(key_row[keys[0].index("Spent this period (USD)")]) == key_spent.quantize(Decimal("0.000001"))


def test_spent_this_period_is_the_figure_the_budgets_enforce(staff_client, db):
    team = TeamFactory(budget_usd=Decimal("5"), budget_period="month")
    key = APIKeyFactory(team=team, budget_usd=Decimal("2"), budget_period="day")
    RequestLogFactory(api_key=key, key_prefix=key.prefix, team=team, cost_usd=Decimal("0.25"))
    # A shadow copy names the caller's key by prefix but bills nobody.
    RequestLogFactory(key_prefix=key.prefix, shadow_of=uuid.uuid4(), cost_usd=Decimal("0.1"))
    # A request still running: its estimate is reserved on both budgets, not yet logged.
    admission.reserve(RequestContext(api_key=key, key_prefix=key.prefix), tokens=0, cost=Decimal("0.3"))
    rollups.refresh()

    tables = _Tables(staff_client.get("/admin/dashboards/keys/?period=7d").content.decode()).tables

    keys, teams = tables["keys"], tables["teams"]
    (key_row,) = [row for row in keys[1:] if row[0] == f"gw_{key.prefix}…"]
    (team_row,) = [row for row in teams[1:] if row[0] == team.name]
    assert key_row[keys[0].index("Spent this period (USD)")] == f"{budgets.spent_this_period(key):.6f}" == "0.550000"
    assert team_row[teams[0].index("Spent this period (USD)")] == f"{budgets.spent_this_period(team):.6f}" == "0.550000"
    assert key_row[keys[0].index("Budget used (%)")] == "27.50"
    # The period's cost column is the log's by prefix: the shadow copy in, the reservation not.
    assert key_row[keys[0].index("Cost (USD)")] == "0.350000"
