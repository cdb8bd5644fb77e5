import io

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway.keys.services import api_key_create, api_key_revoke
from gateway.models import APIKey, AuditAction, AuditEvent, Team
from tests.factories import APIKeyFactory

LIST = "/admin/gateway/apikey/"


def _history(key: APIKey) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(api_key=key).order_by("pk").values_list("action", "actor"))


@pytest.mark.django_db
def test_createapikey_records_the_creation_with_the_keys_scope():
    call_command("createapikey", "--name", "ops", "--models", "sentiment", stdout=io.StringIO(), stderr=io.StringIO())

    key = APIKey.objects.get(name="ops")
    assert _history(key) == [(AuditAction.KEY_CREATE, "createapikey command")]
    message = AuditEvent.objects.get(api_key=key).message
    assert f"gw_{key.prefix}" in message and "models ['sentiment']" in message


@pytest.mark.django_db
def test_a_key_refused_by_createapikey_leaves_no_team_and_no_event():
    with pytest.raises(CommandError, match="Unknown endpoints"):
        call_command("createapikey", "--name", "bad", "--team", "new-team", "--endpoints", "everything")

    assert not Team.objects.exists() and not AuditEvent.objects.exists()


def test_a_key_added_in_the_admin_shows_its_creation_on_its_page(operator):
    response = operator.post(
        f"{LIST}add/",
        {
            "name": "billing-service",
            "is_active": "on",
            "allowed_endpoints": '["predict"]',
            "allowed_models": "[]",
            "budget_period": "month",
            "budget_alert_percent": "80",
        },
    )

    key = APIKey.objects.get(name="billing-service")
    assert response.status_code == 200  # the page that shows the new key once
    assert _history(key) == [(AuditAction.KEY_CREATE, "ops-admin")]
    assert key.allowed_endpoints == ["predict"]
    # The admin's own log entry names the row the service created.
    assert LogEntry.objects.get(action_flag=ADDITION).object_id == str(key.pk)
    page = operator.get(f"{LIST}{key.pk}/change/").content.decode()
    assert "API key created" in page and f"gw_{key.prefix}" in page


def test_revoking_in_the_admin_leaves_one_event_however_often_it_is_asked(operator):
    key = APIKeyFactory()

    for _ in range(2):
        operator.post(LIST, {"action": "revoke_keys", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.is_revoked
    assert _history(key) == [(AuditAction.KEY_REVOKE, "ops-admin")]
    assert "API key revoked" in operator.get(f"{LIST}{key.pk}/change/").content.decode()


@pytest.mark.django_db
def test_revoking_a_stale_copy_of_a_revoked_key_changes_nothing():
    key, _ = api_key_create(name="twice", actor="tests")
    stale = APIKey.objects.get(pk=key.pk)
    assert api_key_revoke(key=key, actor="first") is True

    assert api_key_revoke(key=stale, actor="second") is False
    assert [actor for _, actor in _history(key)] == ["tests", "first"]


@pytest.mark.django_db
def test_a_deleted_keys_events_stay_and_name_it():
    key, _ = api_key_create(name="short-lived", actor="tests")
    prefix = key.prefix
    api_key_revoke(key=key, actor="tests")

    key.delete()

    events = AuditEvent.objects.order_by("pk")
    assert [(e.action, e.api_key_id) for e in events] == [
        (AuditAction.KEY_CREATE, None),
        (AuditAction.KEY_REVOKE, None),
    ]
    assert all(f"gw_{prefix}" in e.message for e in events)
