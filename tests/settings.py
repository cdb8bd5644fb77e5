"""The project's settings, for tests: a deployment (PostgreSQL, Redis) must be given a
SECRET_KEY, so a test run makes one up. Processes the tests start inherit it."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from config.settings import *  # noqa: F403
