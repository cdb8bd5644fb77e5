"""Settings that refuse to be unsafe: each case starts a fresh Python with an environment of its
own, since settings are read once, at start."""

import json
import os
import stat
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from tests.servers import ROOT

PRODUCTION = {
    "DATABASE_URL": "postgres://gateway:pw@db.invalid:5432/gateway",
    "REDIS_URL": "redis://:pw@redis.invalid:6379/0",
}
STRONG_KEY = "a-strong-key-" + "0123456789abcdef" * 4


def _settings(env: dict[str, str], *names: str) -> subprocess.CompletedProcess:
    """Import the settings under `env` alone and print the named ones as JSON."""
    code = (
        "import json; import config.settings as settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}, default=str))"
    )
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
    )


def _values(env: dict[str, str], *names: str) -> dict:
    result = _settings(env, *names)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "key",
    [None, "", "django-insecure-embedded-default-set-SECRET_KEY", "short", "a" * 60],
    ids=["unset", "empty", "the-old-default", "too-short", "one-character"],
)
def test_a_deployment_without_a_real_secret_key_refuses_to_start(key, tmp_path):
    env = {**PRODUCTION, "GATEWAY_EMBEDDED_KEY_FILE": str(tmp_path / "key")}
    if key is not None:
        env["SECRET_KEY"] = key

    result = _settings(env, "SECRET_KEY")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr
    assert not (tmp_path / "key").exists()  # never a made-up key outside the embedded default


def test_a_deployment_reads_its_secrets_from_files_as_compose_secrets_give_them(tmp_path):
    (tmp_path / "secret_key").write_text(STRONG_KEY + "\n")
    (tmp_path / "metrics_token").write_text("scrape-secret\n")
    (tmp_path / "database_url").write_text(PRODUCTION["DATABASE_URL"] + "\n")

    values = _values(
        {
            "REDIS_URL": PRODUCTION["REDIS_URL"],
            "DATABASE_URL_FILE": str(tmp_path / "database_url"),
            "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
            "GATEWAY_METRICS_TOKEN_FILE": str(tmp_path / "metrics_token"),
        },
        "SECRET_KEY",
        "GATEWAY_METRICS_TOKEN",
        "GATEWAY_EMBEDDED",
        "DATABASES",
    )

    assert values["SECRET_KEY"] == STRONG_KEY  # without the file's newline
    assert values["GATEWAY_METRICS_TOKEN"] == "scrape-secret"
    assert values["GATEWAY_EMBEDDED"] is False
    assert values["DATABASES"]["default"]["NAME"] == "gateway"
    assert values["DATABASES"]["default"]["PASSWORD"] == "pw"


def test_the_embedded_default_makes_its_key_once_and_keeps_it(tmp_path):
    env = {"GATEWAY_EMBEDDED_KEY_FILE": str(tmp_path / "secret_key")}

    first = _values(env, "SECRET_KEY", "GATEWAY_EMBEDDED")
    second = _values(env, "SECRET_KEY")

    assert first["GATEWAY_EMBEDDED"] is True
    assert first["SECRET_KEY"] == second["SECRET_KEY"] == (tmp_path / "secret_key").read_text()
    assert len(first["SECRET_KEY"]) >= 50
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    # Another install makes its own.
    assert _values({"GATEWAY_EMBEDDED_KEY_FILE": str(tmp_path / "other")}, "SECRET_KEY") != first


def test_processes_starting_together_agree_on_one_embedded_key(tmp_path):
    env = {"PATH": os.environ["PATH"], "GATEWAY_EMBEDDED_KEY_FILE": str(tmp_path / "secret_key")}
    code = "import config.settings as s; print(s.SECRET_KEY)"
    starting = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]

    keys = {process.communicate(timeout=60)[0].strip() for process in starting}

    assert keys == {(tmp_path / "secret_key").read_text()}
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]  # no half-written leftovers


def test_git_and_the_image_leave_the_embedded_key_out():
    assert ".secret_key" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".secret_key" in (ROOT / ".dockerignore").read_text().splitlines()


def test_behind_a_tls_proxy_https_is_required_with_hsts_and_secure_cookies():
    names = (
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "CSRF_COOKIE_HTTPONLY",
    )

    behind = _values({**PRODUCTION, "SECRET_KEY": STRONG_KEY, "BEHIND_TLS_PROXY": "true"}, *names)
    direct = _values({**PRODUCTION, "SECRET_KEY": STRONG_KEY}, *names)

    assert behind == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_HTTPONLY": True,
    }
    # Without the explicit setting, no client's X-Forwarded-Proto is believed.
    assert direct["SECURE_PROXY_SSL_HEADER"] is None
    assert direct["SECURE_SSL_REDIRECT"] is False


@override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_SSL_REDIRECT=True,
    SECURE_HSTS_SECONDS=31_536_000,
)
@pytest.mark.usefixtures("db")
def test_plain_http_is_redirected_except_the_probes_and_metrics():
    browser = Client()  # built under the settings above: its middleware reads them

    api = browser.post("/api/v1/predict", {"text": "x"}, content_type="application/json")
    admin = browser.get("/admin/")
    probes = {path: browser.get(path).status_code for path in ("/health", "/ready", "/metrics")}
    over_tls = browser.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert api.status_code == admin.status_code == 301
    assert api["Location"] == "https://testserver/api/v1/predict"
    assert 301 not in probes.values()
    assert over_tls.status_code == 200
    assert over_tls["Strict-Transport-Security"].startswith("max-age=31536000")
