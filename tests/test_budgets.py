import datetime
import logging
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db.models import Sum
from prometheus_client import REGISTRY

from gateway.limits import budgets
from gateway.models import BudgetAlert, BudgetPeriod, RequestLog
from inference.backends.encoder import most_tokens
from inference.models import ModelVersion
from tests.factories import APIKeyFactory, RequestLogFactory, TeamFactory, sentiment_priced_per_request

pytestmark = pytest.mark.usefixtures("default_models")

PREDICT = "/api/v1/predict"
CENT = Decimal("0.01")


@pytest.fixture
def priced():
    """The sentiment model at one cent a request, nothing per token: estimates are exact."""
    return sentiment_priced_per_request(CENT)


def _predict(client, key, text):
    return client.post(PREDICT, {"text": text}, format="json", HTTP_X_API_KEY=key.plaintext)


def _spent(**filters) -> Decimal:
    return RequestLog.objects.filter(**filters).aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def test_request_past_the_keys_budget_gets_402(client, priced):
    key = APIKeyFactory(budget_usd=Decimal("0.025"), budget_period=BudgetPeriod.DAY)

    answers = [_predict(client, key, f"text number {i}") for i in range(3)]

    assert [r.status_code for r in answers] == [200, 200, 402]
    error = answers[-1].json()["error"]
    assert error["type"] == "budget_exceeded"
    assert error["message"].startswith("The daily budget of this API key (0.025 USD)")
    assert "0.00500000 USD left" in error["message"]
    assert _spent(api_key=key) == Decimal("0.02")
    assert RequestLog.objects.get(request_id=answers[-1]["X-Request-ID"]).error_type == "budget_exceeded"


def test_team_budget_caps_all_its_keys_together(client, priced):
    team = TeamFactory(budget_usd=Decimal("0.03"))
    first, second = APIKeyFactory(team=team), APIKeyFactory(team=team)

    statuses = [_predict(client, key, f"text {i}").status_code for i, key in enumerate([first, second] * 2)]

    assert statuses == [200, 200, 200, 402]
    assert _spent(team=team) == Decimal("0.03")


def test_request_must_fit_both_the_key_and_the_team_budget(client, priced):
    key = APIKeyFactory(budget_usd=Decimal("1"), team=TeamFactory(budget_usd=Decimal("0.01")))

    assert _predict(client, key, "one").status_code == 200
    refused = _predict(client, key, "two")

    assert refused.status_code == 402
    assert "team" in refused.json()["error"]["message"]


def test_cache_hits_cost_nothing_and_are_served_past_the_budget(client, priced):
    key = APIKeyFactory(budget_usd=CENT)
    assert _predict(client, key, "I loved it").status_code == 200

    hit = _predict(client, key, "I loved it")

    assert hit.status_code == 200
    assert hit.json()["cached"] is True
    assert _predict(client, key, "something new").status_code == 402


def test_counters_lost_from_redis_are_rebuilt_from_the_request_log(client, priced):
    key = APIKeyFactory(budget_usd=Decimal("0.025"))
    _predict(client, key, "one")
    _predict(client, key, "two")

    cache.clear()  # Redis restarted empty

    assert _predict(client, key, "three").status_code == 402


def test_raising_the_budget_applies_to_the_next_request(client, priced):
    key = APIKeyFactory(budget_usd=CENT)
    _predict(client, key, "one")
    assert _predict(client, key, "two").status_code == 402

    key.budget_usd = Decimal("0.02")
    key.save()

    assert _predict(client, key, "two").status_code == 200
    assert _predict(client, key, "three").status_code == 402


def test_estimates_with_token_prices_never_pass_the_budget(client):
    version = ModelVersion.objects.get(name="sentiment")
    version.input_cost_per_1k = Decimal("0.5")
    version.save()
    key = APIKeyFactory(budget_usd=Decimal("0.05"))

    statuses = [_predict(client, key, f"a short review, number {i}").status_code for i in range(20)]

    assert 402 in statuses
    assert 0 < _spent(api_key=key) <= Decimal("0.05")


def test_alert_is_raised_once_when_spend_crosses_the_threshold(client, priced, caplog):
    key = APIKeyFactory(budget_usd=Decimal("0.05"), budget_alert_percent=50)
    alerts_before = REGISTRY.get_sample_value("gateway_budget_alerts_total", {"scope": "key"}) or 0

    with caplog.at_level(logging.WARNING, logger="gateway.limits.budgets"):
        for i in range(2):
            _predict(client, key, f"text {i}")
        assert not BudgetAlert.objects.exists()
        for i in range(2, 5):
            _predict(client, key, f"text {i}")

    alert = BudgetAlert.objects.get()
    assert alert.api_key == key
    assert alert.threshold_percent == 50
    assert alert.spent_usd == Decimal("0.03")
    assert alert.period_start == budgets.period_bounds(BudgetPeriod.MONTH)[0]
    assert REGISTRY.get_sample_value("gateway_budget_alerts_total", {"scope": "key"}) == alerts_before + 1
    assert [r for r in caplog.records if "Budget alert" in r.getMessage()]


def test_team_alert_is_its_own(client, priced):
    team = TeamFactory(budget_usd=Decimal("0.02"), budget_alert_percent=50)

    _predict(client, APIKeyFactory(team=team), "one")

    assert BudgetAlert.objects.get().team == team


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        (BudgetPeriod.DAY, "2026-03-14T23:59:59", "2026-03-14", "2026-03-15"),
        (BudgetPeriod.WEEK, "2026-03-14T12:00:00", "2026-03-09", "2026-03-16"),
        (BudgetPeriod.MONTH, "2026-03-14T12:00:00", "2026-03-01", "2026-04-01"),
        (BudgetPeriod.MONTH, "2026-12-31T23:00:00", "2026-12-01", "2027-01-01"),
    ],
    ids=["day", "week-from-monday", "month", "december"],
)
def test_budget_periods_are_utc_calendar_periods(period, now, start, end):
    moment = datetime.datetime.fromisoformat(now).replace(tzinfo=datetime.UTC)

    bounds = budgets.period_bounds(period, moment)

    assert [b.date().isoformat() for b in bounds] == [start, end]
    assert all(b.tzinfo is not None and b.hour == 0 for b in bounds)


@pytest.mark.parametrize(
    "text",
    ["I loved it", "naïve café déjà vu", "한국어 문장입니다", "東京は晴れ", "x" * 3000, "emoji 🙂🙂 !!!"],
    ids=["ascii", "accents", "hangul", "kanji", "long", "emoji"],
)
def test_token_estimate_is_an_upper_bound(client, api_key, text):
    response = client.post("/api/v1/embeddings", {"input": text}, format="json", HTTP_X_API_KEY=api_key.plaintext)

    assert response.json()["usage"]["prompt_tokens"] <= most_tokens(text)


def test_spend_of_many_owners_read_at_once_is_each_ones_spend_this_period(client, priced):
    team = TeamFactory(budget_usd=Decimal("1"), budget_period=BudgetPeriod.MONTH)
    from_log = APIKeyFactory(team=team, budget_usd=Decimal("1"), budget_period=BudgetPeriod.WEEK)
    RequestLogFactory(api_key=from_log, key_prefix=from_log.prefix, team=team, cost_usd=Decimal("0.5"))
    live = APIKeyFactory(team=team, budget_usd=Decimal("1"), budget_period=BudgetPeriod.DAY)
    _predict(client, live, "one")
    _predict(client, live, "two")  # its counter holds 0.02, its team's 0.52 (rebuilt from the log first)
    unbudgeted = APIKeyFactory()
    RequestLogFactory(api_key=unbudgeted, key_prefix=unbudgeted.prefix, cost_usd=Decimal("0.25"))
    RequestLogFactory(key_prefix=live.prefix, shadow_of=uuid.uuid4(), cost_usd=Decimal("7"))  # billed to nobody
    owners = [live, from_log, unbudgeted, team, APIKeyFactory(budget_usd=CENT)]

    spent = budgets.spent_this_period_of(owners)

    assert spent == [budgets.spent_this_period(owner) for owner in owners]
    assert spent == [Decimal("0.02"), Decimal("0.5"), Decimal("0.25"), Decimal("0.52"), Decimal(0)]
