import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from gateway.keys.authentication import APIKeyAuthentication
from gateway.record.context import RequestContext
from tests.factories import APIKeyFactory

pytestmark = pytest.mark.usefixtures("default_models")

PREDICT = "/api/v1/predict"
BODY = {"text": "I loved it"}


def _post(client, key=None, header="HTTP_X_API_KEY"):
    extra = {}
    if key is not None:
        extra[header] = f"Bearer {key}" if header == "HTTP_AUTHORIZATION" else key
    return client.post(PREDICT, BODY, format="json", **extra)


def _assert_error(response, status, error_type):
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == error_type
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]


def test_key_is_accepted_in_x_api_key_header(client, api_key):
    assert _post(client, api_key.plaintext).status_code == 200


def test_key_is_accepted_as_bearer_token(client, api_key):
    assert _post(client, api_key.plaintext, header="HTTP_AUTHORIZATION").status_code == 200


def test_missing_key_is_401(client):
    response = _post(client)

    _assert_error(response, 401, "authentication_error")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "raw",
    ["nonsense", "gw_short.secret", "gw_ABCDEFGH." + "x" * 10, "sk-" + "a" * 48, "gw_ABCDEFGH." + "!" * 43],
    ids=["word", "short-prefix", "short-secret", "other-vendor", "bad-characters"],
)
def test_malformed_key_is_401(client, raw):
    _assert_error(_post(client, raw), 401, "authentication_error")


def test_malformed_key_is_refused_without_a_database_query(db):
    request = APIRequestFactory().post(PREDICT, BODY, format="json", HTTP_X_API_KEY="gw_bad")
    request.ctx = RequestContext()

    with CaptureQueriesContext(connection) as queries, pytest.raises(Exception, match="Malformed"):
        APIKeyAuthentication().authenticate(request)

    assert len(queries) == 0


def test_unknown_prefix_is_401(client, api_key):
    forged = "gw_ZZZZZZZZ." + api_key.plaintext.split(".")[1]

    _assert_error(_post(client, forged), 401, "authentication_error")


def test_wrong_secret_is_401(client, api_key):
    forged = api_key.plaintext.split(".")[0] + "." + "A" * 43

    _assert_error(_post(client, forged), 401, "authentication_error")


def test_revoked_key_is_refused_on_its_next_request(client, api_key):
    assert _post(client, api_key.plaintext).status_code == 200

    api_key.revoke()

    response = _post(client, api_key.plaintext)
    _assert_error(response, 401, "authentication_error")
    assert "revoked" in response.json()["error"]["message"]


def test_inactive_key_is_401(client):
    key = APIKeyFactory(is_active=False)

    _assert_error(_post(client, key.plaintext), 401, "authentication_error")


def test_expired_key_is_401(client):
    key = APIKeyFactory(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    response = _post(client, key.plaintext)

    _assert_error(response, 401, "authentication_error")
    assert "expired" in response.json()["error"]["message"]


def test_key_not_yet_expired_is_accepted(client):
    key = APIKeyFactory(expires_at=timezone.now() + datetime.timedelta(days=1))

    assert _post(client, key.plaintext).status_code == 200


def test_key_without_the_endpoint_scope_is_403(client):
    key = APIKeyFactory(allowed_endpoints=["embeddings"])

    response = _post(client, key.plaintext)

    _assert_error(response, 403, "permission_denied")
    assert "predict" in response.json()["error"]["message"]


def test_key_with_the_endpoint_scope_is_accepted(client):
    key = APIKeyFactory(allowed_endpoints=["predict"])

    assert _post(client, key.plaintext).status_code == 200


def test_key_without_the_model_scope_is_403(client):
    key = APIKeyFactory(allowed_models=["embeddings"])

    response = _post(client, key.plaintext)

    _assert_error(response, 403, "permission_denied")
    assert "sentiment" in response.json()["error"]["message"]


def test_use_is_recorded_on_the_key(client, api_key):
    _post(client, api_key.plaintext)

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
