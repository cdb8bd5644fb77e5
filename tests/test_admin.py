import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from gateway.models import APIKey, RequestLog
from inference.models import ModelVersion, Status
from tests.factories import APIKeyFactory, ModelVersionFactory

# What the add form holds before the operator types anything (limits and budget left empty).
KEY_FORM_DEFAULTS = {"budget_period": "month", "budget_alert_percent": "80"}


@pytest.fixture
def operator(db):
    user = get_user_model().objects.create_superuser("operator", "ops@example.com", "correct horse battery")
    browser = Client()
    browser.force_login(user)
    return browser


def test_adding_a_key_shows_it_once_and_stores_its_hash(operator):
    response = operator.post(
        "/admin/gateway/apikey/add/",
        {
            "name": "billing-service",
            "is_active": "on",
            "allowed_endpoints": "[]",
            "allowed_models": '["sentiment"]',
            **KEY_FORM_DEFAULTS,
        },
        follow=True,
    )

    page = response.content.decode()
    shown = re.findall(r"gw_[A-Za-z0-9]{8}\.[A-Za-z0-9_-]{43}", page)
    assert len(shown) == 1
    key = APIKey.objects.get(name="billing-service")
    assert shown[0].startswith(f"gw_{key.prefix}.")
    assert key.allowed_models == ["sentiment"]
    # Later views of the key never show the secret again.
    again = operator.get(f"/admin/gateway/apikey/{key.pk}/change/").content.decode()
    assert shown[0].split(".")[1] not in again


def test_admin_rejects_unknown_endpoint_scopes(operator):
    response = operator.post(
        "/admin/gateway/apikey/add/",
        {
            "name": "bad",
            "is_active": "on",
            "allowed_endpoints": '["everything"]',
            "allowed_models": "[]",
            **KEY_FORM_DEFAULTS,
        },
    )

    assert response.status_code == 200
    assert "Unknown endpoints" in response.content.decode()
    assert not APIKey.objects.exists()


def test_revoke_action_refuses_the_key_on_the_next_request(operator, client, default_models):
    key = APIKeyFactory()
    api = client
    assert api.post("/api/v1/predict", {"text": "x"}, format="json", HTTP_X_API_KEY=key.plaintext).status_code == 200

    operator.post("/admin/gateway/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})

    response = api.post("/api/v1/predict", {"text": "x"}, format="json", HTTP_X_API_KEY=key.plaintext)
    assert response.status_code == 401
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_promote_action_steps_the_old_version_down(operator):
    old = ModelVersionFactory(version="1")
    old.promote()
    new = ModelVersionFactory(version="2")

    operator.post("/admin/inference/modelversion/", {"action": "promote", "_selected_action": [new.pk]})

    assert ModelVersion.objects.get(pk=new.pk).status == Status.PRODUCTION
    assert ModelVersion.objects.get(pk=old.pk).status == Status.STAGING


def test_promote_action_refuses_two_versions_of_one_name(operator):
    first, second = ModelVersionFactory(version="1"), ModelVersionFactory(version="2")

    operator.post("/admin/inference/modelversion/", {"action": "promote", "_selected_action": [first.pk, second.pk]})

    assert not ModelVersion.objects.filter(status=Status.PRODUCTION).exists()


def test_archive_action(operator):
    version = ModelVersionFactory(version="1", status=Status.PRODUCTION)

    operator.post("/admin/inference/modelversion/", {"action": "archive", "_selected_action": [version.pk]})

    assert ModelVersion.objects.get(pk=version.pk).status == Status.ARCHIVED


def test_request_log_is_read_only_and_lists_rows(operator, authed, default_models):
    authed.post("/api/v1/predict", {"text": "I loved it"}, format="json")
    row = RequestLog.objects.get()

    listing = operator.get("/admin/gateway/requestlog/")
    detail = operator.get(f"/admin/gateway/requestlog/{row.pk}/change/")

    assert listing.status_code == 200
    assert "/api/v1/predict" in listing.content.decode()
    assert detail.status_code == 200
    assert operator.get("/admin/gateway/requestlog/add/").status_code == 403


def test_test_connection_lists_the_providers_models(operator, provider):
    response = operator.post(
        "/admin/inference/provider/", {"action": "test_connection", "_selected_action": [provider.pk]}, follow=True
    )

    assert "standin: reachable; models: standin" in response.content.decode().lower()


def test_provider_secret_is_never_shown(operator, provider):
    page = operator.get(f"/admin/inference/provider/{provider.pk}/change/").content.decode()

    assert "STANDIN_API_KEY" in page
    assert "sk-standin-secret" not in page
