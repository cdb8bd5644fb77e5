from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client as DjangoClient
from rest_framework.test import APIClient

from tests.factories import APIKeyFactory, ProviderFactory, StaffUserFactory
from tests.standin_upstream import StandinUpstream
from tests.windows import wait_for_window_room

# The shared development data set, beside the project (../shared/data), never inside it.
SST2_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"


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
    client = DjangoClient()
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


@pytest.fixture
def admin_browser(db):
    """A logged-in superuser's browser on the admin."""
    user = get_user_model().objects.create_superuser("ops-admin", "ops-admin@example.com", "correct horse battery")
    browser = DjangoClient()
    browser.force_login(user)
    return browser


@pytest.fixture
def model_store(settings, tmp_path):
    """MODEL_STORE in a temporary directory: trained artifacts never land in the project."""
    settings.MODEL_STORE = tmp_path / "model_store"
    return settings.MODEL_STORE


@pytest.fixture
def sst2_file():
    """The SST-2 training file from the shared data directory (never copied into the repository)."""
    if not SST2_TRAIN.is_file():
        pytest.skip(f"SST-2 training data is not at {SST2_TRAIN}; it ships beside the project, not in it")
    return SST2_TRAIN


@pytest.fixture
def background_jobs():
    """The experiments' background pool, fresh for the test and drained after it."""
    from experiments import background

    background.shutdown()
    yield background
    background.shutdown()


@pytest.fixture
def roomy_window():
    """Call with (key, seconds): waits, if need be, until the key's rate-limit windows (requests
    and tokens, one minute each) have that long left, so a test's burst cannot straddle an edge."""
    return wait_for_window_room
