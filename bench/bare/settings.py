"""A bare Django project: the ceiling the gateway's chat path is compared with (`make bench`,
`chat_vs_bare_django`). No apps, no middleware, no database: one view that forwards the chat
body to the stand-in upstream the way the gateway does."""

import os
import secrets

SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.bare.urls"
DATABASES: dict = {}
USE_TZ = True
# The stand-in's chat completions URL, given by bench/run.py.
UPSTREAM_URL = os.environ.get("BARE_UPSTREAM_URL", "http://127.0.0.1:9100/v1/chat/completions")
