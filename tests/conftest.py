import uuid
from contextlib import ExitStack

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from gateway.celery import app as celery_app
from tests.factories import APIKeyFactory
from tests.servers import celery_worker, served_database_url


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
def operator(db):
    """A browser logged in to the admin as a superuser."""
    user = get_user_model().objects.create_superuser("operator", "ops@example.com", "correct horse battery")
    browser = Client()
    browser.force_login(user)
    return browser


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
