"""The dashboards in a real browser: headless Debian Chromium driven by Playwright.

Playwright's own browser downloads are never used (`playwright install` is not run): the
system Chromium is launched by path. Screenshots are saved under test-artifacts/.
"""

import os
import shutil

import pytest
from django.contrib.auth.models import Permission
from django.db.models import Count

from gateway.models import RequestLog
from observability.seeding import seed_request_logs
from tests.factories import STAFF_PASSWORD, StaffUserFactory
from tests.servers import ROOT

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"
DASHBOARDS = {
    "overview": "/admin/dashboards/",
    "cost": "/admin/dashboards/cost/",
    "models": "/admin/dashboards/models/",
    "keys": "/admin/dashboards/keys/",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Chromium is not installed (.ci/run installs it)"),
]

# In the page: every chart on it, whether Chart.js drew it, how many non-zero values it holds
# and how many of its canvas pixels are painted.
_CHARTS_DRAWN = """() => Array.from(document.querySelectorAll("canvas[data-config]")).map((canvas) => {
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return {
    id: canvas.id,
    drawn: !!chart,
    values: chart ? chart.data.datasets.flatMap((d) => d.data).filter((v) => v > 0).length : 0,
    painted: painted,
  };
})"""


@pytest.fixture
def browser_page(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # Every script and stylesheet must load (the browser's own /favicon.ico probe aside).
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and not response.url.endswith("/favicon.ico")
                and errors.append(f"{response.status} {response.url}")
            ),
        )
        yield page, errors
        browser.close()


@pytest.fixture
def operator(default_models):
    """A staff user, with history to look at (and the model most of it used, to filter on).
    The database is set up before the browser starts: Django refuses ORM calls in a thread
    where Playwright's event loop runs."""
    seed_request_logs(rows=3000, days=20, keys=8, seed=1)
    user = StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_dashboards"))
    user.busiest_model = (
        RequestLog.objects.exclude(model_version=None)
        .values_list("model_name", flat=True)
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )
    return user


def test_operator_logs_in_and_sees_every_dashboard_drawn_with_data(operator, live_server, browser_page):
    page, errors = browser_page
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.click("#dashboards-module a:text('Overview')")
    page.wait_for_url("**/admin/dashboards/")

    for name, path in DASHBOARDS.items():
        page.goto(live_server.url + path)
        page.wait_for_function("document.querySelectorAll('canvas[data-rendered=true]').length > 0")
        charts = page.evaluate(_CHARTS_DRAWN)
        assert charts, name
        for chart in charts:
            assert chart["drawn"], (name, chart)
            assert chart["values"] > 0, (name, chart)
            assert chart["painted"] > 1000, (name, chart)
        assert page.locator("table[data-table] tbody tr").count() > 1
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)

    assert errors == []


def test_filters_chosen_in_the_page_land_in_the_url(operator, live_server, browser_page):
    page, errors = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/dashboards/models/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/dashboards/models/")

    page.select_option("#id_period", "30d")
    page.fill("#id_model", operator.busiest_model)
    page.click("form.dashboard-filters button[type=submit]")
    page.wait_for_url(f"**/admin/dashboards/models/?*model={operator.busiest_model}*")

    assert "period=30d" in page.url
    models = page.locator("table[data-table=versions] tbody tr td:first-child").all_inner_texts()
    assert set(models) == {operator.busiest_model}
    with page.expect_download() as download:
        page.click("#table-versions a.csv-link")
    assert download.value.suggested_filename.startswith("models-versions-")
    page.click(".dashboard-tabs a:text('Cost')")  # the filters follow to the other dashboards
    page.wait_for_url(f"**/admin/dashboards/cost/?*model={operator.busiest_model}*")
    assert errors == []
