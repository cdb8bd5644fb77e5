from decimal import Decimal

import pytest

from gateway.models import APIKey, BudgetAlert, Team
from tests.factories import APIKeyFactory, TeamFactory, sentiment_priced_per_request

pytestmark = pytest.mark.usefixtures("default_models")


@pytest.fixture
def priced():
    sentiment_priced_per_request("0.01")


def _spend(client, key, count):
    """Paid requests: texts of the key's own, so none is a cache hit."""
    for i in range(count):
        text = f"{key.prefix} text {i}"
        response = client.post("/api/v1/predict", {"text": text}, format="json", HTTP_X_API_KEY=key.plaintext)
        assert response.json()["cached"] is False


def test_operator_creates_a_team_with_limits_and_a_budget(admin_client):
    response = admin_client.post(
        "/admin/gateway/team/add/",
        {
            "name": "search",
            "requests_per_minute": "600",
            "tokens_per_minute": "",
            "budget_usd": "250",
            "budget_period": "month",
            "budget_alert_percent": "80",
        },
    )

    assert response.status_code == 302
    team = Team.objects.get(name="search")
    assert (team.requests_per_minute, team.tokens_per_minute, team.budget_usd) == (600, None, Decimal("250"))


def test_operator_puts_a_key_in_a_team_with_its_own_limit(admin_client):
    team = TeamFactory()
    key = APIKeyFactory()

    response = admin_client.post(
        f"/admin/gateway/apikey/{key.pk}/change/",
        {
            "name": key.name,
            "team": team.pk,
            "is_active": "on",
            "allowed_endpoints": "[]",
            "allowed_models": "[]",
            "requests_per_minute": "30",
            "tokens_per_minute": "",
            "budget_usd": "",
            "budget_period": "day",
            "budget_alert_percent": "80",
        },
    )

    assert response.status_code == 302
    key = APIKey.objects.get(pk=key.pk)
    assert (key.team, key.requests_per_minute, key.budget_usd, key.budget_period) == (team, 30, None, "day")


def test_key_list_shows_usage_against_limits_and_budget(admin_client, client, priced, roomy_window):
    key = APIKeyFactory(name="billing", requests_per_minute=5, budget_usd=Decimal("0.04"), budget_alert_percent=50)
    roomy_window(key, 5)
    _spend(client, key, 2)
    _spend(client, APIKeyFactory(name="unbudgeted"), 1)

    page = admin_client.get("/admin/gateway/apikey/").content.decode()

    assert "2 / 5" in page
    assert "0.0200 / 0.0400 USD (50%)" in page
    assert "past the 50% alert" in page
    # Keys without a budget have no live counter; the list does not sum the log for them.
    assert "no budget" in page


def test_key_page_shows_spend_without_a_budget(admin_client, client, priced):
    key = APIKeyFactory()
    _spend(client, key, 3)

    page = admin_client.get(f"/admin/gateway/apikey/{key.pk}/change/").content.decode()

    assert "0.0300 USD (no budget)" in page
    assert "3 / 100" in page  # the default requests per minute


def test_team_list_shows_the_spend_of_all_its_keys(admin_client, client, priced):
    team = TeamFactory(name="research", budget_usd=Decimal("1"))
    _spend(client, APIKeyFactory(team=team), 1)
    _spend(client, APIKeyFactory(team=team), 2)

    page = admin_client.get("/admin/gateway/team/").content.decode()

    assert "0.0300 / 1.0000 USD (3%)" in page


def test_budget_alerts_are_listed_read_only(admin_client, client, priced):
    key = APIKeyFactory(budget_usd=Decimal("0.01"), budget_alert_percent=100)
    _spend(client, key, 1)
    alert = BudgetAlert.objects.get()

    listing = admin_client.get("/admin/gateway/budgetalert/")

    assert listing.status_code == 200
    assert str(key) in listing.content.decode()
    assert admin_client.get("/admin/gateway/budgetalert/add/").status_code == 403
    assert alert.spent_usd == Decimal("0.01")
