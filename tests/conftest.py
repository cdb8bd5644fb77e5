import os
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from config.celery import app as celery_app
from inference.models import FallbackChain, FallbackStep
from tests.factories import APIKeyFactory, ChatVersionFactory, ProviderFactory, StaffUserFactory
from tests.servers import celery_worker, served_database_url
from tests.standin_upstream import StandinUpstream
from tests.windows import wait_for_window_room

# The shared development data set, beside the project (../shared/data, or SHARED_DATA_DIR),
# never inside it.
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
SST2_TRAIN = SHARED_DATA / "sst2" / "train.tsv"


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (the tests' own Redis database)."""
    cache.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def _served_log_rows_written_at_once():
    """Servers and workers that tests start write each log row before answering (a test that
    wants the buffer sets it in their env). A row still buffered when a test ends would be
    written during pytest-django's TRUNCATE of the tables, and the two can deadlock (the
    row's foreign-key check against the TRUNCATE's locks)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GATEWAY_REQUEST_LOG_BUFFER_S", "0")
        yield


@pytest.fixture(scope="session", autouse=True)
def _request_spool_of_this_run(tmp_path_factory):
    """Log rows spooled by this run's processes stay in this run: a spool left by an earlier
    run (a killed one) would be replayed into this run's database, onto its keys."""
    directory = str(tmp_path_factory.mktemp("request-spool"))
    with pytest.MonkeyPatch.context() as patch, override_settings(GATEWAY_REQUEST_SPOOL_DIR=directory):
        patch.setenv("GATEWAY_REQUEST_SPOOL_DIR", directory)
        yield


@pytest.fixture(autouse=True)
def _log_rows_written_at_once(settings):
    """A test's transaction is invisible to the log writer's thread: in-process requests write
    their rows on their own thread."""
    settings.GATEWAY_REQUEST_LOG_BUFFER_S = 0


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


@pytest.fixture
def gpt(provider):
    """A production chat version `gpt:a` on the stand-in provider."""
    return ChatVersionFactory(name="gpt", version="a", provider=provider)


@pytest.fixture
def backup(provider, gpt):
    """`gpt-backup:b`, tried after `gpt` fails (its fallback chain)."""
    version = ChatVersionFactory(name="gpt-backup", version="b", provider=provider)
    chain = FallbackChain.objects.create(model_name="gpt")
    FallbackStep.objects.create(chain=chain, position=1, version=version)
    return version


@pytest.fixture
def operator(db):
    """A browser logged in to the admin as a superuser (username ops-admin)."""
    user = get_user_model().objects.create_superuser("ops-admin", "ops@example.com", "correct horse battery")
    browser = Client()
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


@pytest.fixture
def eager_jobs():
    """Batch jobs as the embedded default runs them: eagerly, inside the submitting request."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Call it to start a real Celery worker process on the test database and the tests' Redis."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("worker tests share PostgreSQL and the Redis broker with the worker: run them with make test")
    env = {
        "DATABASE_URL": served_database_url(),
        "TORCH_THREADS": "1",
        "WORKER_CONCURRENCY": "2",
        # A dead worker's tasks go to the next worker after 5 s instead of 5 minutes, and a
        # job with lost messages is requeued after 10 s instead of 15 minutes.
        "CELERY_VISIBILITY_TIMEOUT_S": "5",
        "CELERY_UNACKED_RESTORE_INTERVAL_S": "1",
        "GATEWAY_BATCH_STALLED_AFTER_S": "10",
        "GATEWAY_BATCH_STALL_CHECK_S": "1",
    }
    with ExitStack() as workers:
        yield lambda: workers.enter_context(celery_worker(env, tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"))
