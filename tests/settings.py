"""The project's settings for tests and the local measurements (bench/, scripts/): on
PostgreSQL and Redis the gateway insists on a SECRET_KEY, so a run makes one up. Processes
that the run starts inherit it."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from config.settings import *  # noqa: F403
