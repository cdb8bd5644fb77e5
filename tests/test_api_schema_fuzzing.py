"""The live gateway against its own OpenAPI schema, on requests schemathesis generates from it:
every documented operation, with a valid key and without one. No answer is a 5xx, none breaks
the documented schema, and none succeeds without a key."""

import pytest
import schemathesis
from django.conf import settings
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from inference.models import Provider
from tests.factories import APIKeyFactory
from tests.servers import gunicorn, served_database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_models")]

# Examples per operation and key: enough to reach each operation's refusals and its answer,
# few enough that the whole run stays within a couple of minutes on two cores.
EXAMPLES = 20


def _requires_key(operation) -> bool:
    security = operation.definition.raw.get("security") or []
    return bool(security) and {} not in security


def test_every_operation_keeps_to_its_schema_and_answers_no_one_without_a_key(standin):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the server shares the test database and Redis: run on PostgreSQL and Redis (make test)")
    # The default chat model answers from the stand-in instead of a local engine that is not running.
    Provider.objects.filter(name="local").update(base_url=standin.url)
    key = APIKeyFactory(requests_per_minute=100_000, tokens_per_minute=10**9)
    env = {
        "DATABASE_URL": served_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "WEB_WORKERS": "1",
        "WEB_THREADS": "8",
        "TORCH_THREADS": "1",
        # Every request of the run comes from one address; its keyless half would pass the
        # per-address limit on failed authentications, and be answered 429 before being checked.
        "GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS": "0",
    }
    with gunicorn(env) as base:
        schema = schemathesis.openapi.from_url(base + "/api/schema")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
            "POST /v1/chat/completions",
            "POST /v1/embeddings",
            "GET /v1/models",
            "POST /api/v1/predict",
        }
        for operation in operations:
            for headers in ({"X-API-Key": key.plaintext}, {}):
                _check(operation, base, headers)


def _check(operation, base: str, headers: dict) -> None:
    # JSON bodies only: the form media types are parsed as JSON too, so they add nothing but 400s.
    json_body = "application/json" in operation.definition.raw.get("requestBody", {}).get("content", {})

    @given(case=operation.as_strategy(media_type="application/json") if json_body else operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(base_url=base, headers=headers, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        if not headers and _requires_key(operation):
            assert response.status_code >= 400, f"{operation.label} answered {response.status_code} without a key"

    run()
