import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import APIKeyFactory
from tests.windows import wait_for_window_room


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (the tests' own Redis database)."""
    cache.clear()
    yield


@pytest.fixture
def default_models(db):
    """The versions `make run` registers on the packaged weights."""
    call_command("bootstrap", verbosity=0)


@pytest.fixture
def api_key(db):
    return APIKeyFactory()


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def authed(client, api_key):
    client.credentials(HTTP_X_API_KEY=api_key.plaintext)
    return client


@pytest.fixture
def roomy_window():
    """Call with (key, seconds): waits, if need be, until the key's rate-limit windows (requests
    and tokens, one minute each) have that long left, so a test's burst cannot straddle an edge."""
    return wait_for_window_room
