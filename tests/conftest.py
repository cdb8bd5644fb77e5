import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import APIKeyFactory, ProviderFactory, StaffUserFactory
from tests.standin_upstream import StandinUpstream


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
def staff_user(db):
    return StaffUserFactory()


@pytest.fixture
def staff_client(staff_user):
    """A browser-like client logged into the admin as a staff user (not a superuser)."""
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture(scope="session")
def _standin_server():
    server = StandinUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def standin(_standin_server, monkeypatch, settings):
    """The stand-in provider, emptied for each test; retries back off briefly in tests."""
    _standin_server.requests.clear()
    _standin_server._scripts.clear()
    monkeypatch.setenv("STANDIN_API_KEY", "sk-standin-secret")
    settings.UPSTREAM_BACKOFF_INITIAL_S = 0.01
    settings.UPSTREAM_BACKOFF_MAX_S = 0.05
    return _standin_server


@pytest.fixture
def provider(standin, db):
    return ProviderFactory(name="standin", base_url=standin.url)
