import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway.keys import crypto
from gateway.models import APIKey


@pytest.mark.django_db
def test_created_key_is_returned_once_and_only_its_hash_is_stored():
    key, plaintext = APIKey.objects.create_key(name="ci")

    prefix, secret = plaintext.removeprefix("gw_").split(".")
    stored = APIKey.objects.filter(pk=key.pk).values().get()
    assert prefix == key.prefix
    assert stored["hashed_secret"] == crypto.hash_secret(secret)
    assert all(secret not in str(value) for value in stored.values())


@pytest.mark.django_db
def test_keys_are_unique():
    keys = {APIKey.objects.create_key(name=f"k{i}")[1] for i in range(20)}

    assert len(keys) == 20


@pytest.mark.django_db
def test_createapikey_prints_a_working_key_once(client, default_models):
    out, err = io.StringIO(), io.StringIO()

    call_command("createapikey", "--name", "ops", "--endpoints", "predict", stdout=out, stderr=err)

    plaintext = out.getvalue().strip()
    key = APIKey.objects.get(name="ops")
    assert plaintext.startswith(f"gw_{key.prefix}.")
    assert key.allowed_endpoints == ["predict"]
    assert plaintext not in err.getvalue()
    response = client.post("/api/v1/predict", {"text": "fine"}, format="json", HTTP_X_API_KEY=plaintext)
    assert response.status_code == 200


@pytest.mark.django_db
def test_createapikey_refuses_an_unknown_endpoint():
    with pytest.raises(CommandError, match="Unknown endpoints"):
        call_command("createapikey", "--name", "bad", "--endpoints", "everything", stdout=io.StringIO())

    assert not APIKey.objects.exists()


@pytest.mark.django_db
def test_revoked_key_cannot_be_reactivated():
    key, _ = APIKey.objects.create_key(name="gone")
    key.revoke()
    key.is_active = True

    with pytest.raises(Exception, match="cannot be reactivated"):
        key.full_clean()


@pytest.mark.django_db
def test_createapikey_sets_team_limits_and_budget():
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "createapikey",
        *("--name", "batch", "--team", "research", "--requests-per-minute", "60", "--budget-usd", "12.5"),
        stdout=out,
        stderr=err,
    )

    key = APIKey.objects.get(name="batch")
    assert key.team.name == "research"
    assert (key.requests_per_minute, key.budget_usd, key.budget_period) == (60, Decimal("12.5"), "month")
    assert "Created team 'research'" in err.getvalue()


@pytest.mark.django_db
def test_createapikey_refuses_a_negative_budget():
    with pytest.raises(CommandError, match="greater than or equal to 0"):
        call_command("createapikey", "--name", "x", "--budget-usd", "-1", stdout=io.StringIO())
