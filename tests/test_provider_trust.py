"""The provider trust boundary: a provider row decides where a provider key is sent, so its key
variable and its URL are checked when it is saved and again before every call."""

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.models import RequestLog
from inference.models import Provider
from inference.models.providers import DEFAULT_PARAMETERS, ProviderNotTrusted
from tests.factories import ChatVersionFactory, ProviderFactory

ADD = "/admin/inference/provider/add/"


def _form(**fields) -> dict:
    return {"name": "acme", "base_url": "https://api.acme.example/v1", "api_key_env": "ACME_API_KEY"} | {
        "timeout_s": "10",
        "max_retries": "1",
        "allowed_parameters": json.dumps(DEFAULT_PARAMETERS),
        **fields,
    }


@pytest.mark.parametrize(
    "variable",
    ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "GATEWAY_METRICS_TOKEN", "PATH", "acme_api_key", "ACME_TOKEN"],
)
def test_a_key_variable_outside_the_pattern_is_refused_on_save(operator, variable):
    response = operator.post(ADD, _form(api_key_env=variable))

    assert response.status_code == 200  # the form again, with the error
    assert "Not a provider key variable" in response.content.decode()
    assert not Provider.objects.exists()


def test_the_gateways_own_variables_are_refused_even_under_a_looser_pattern(operator, settings):
    settings.GATEWAY_PROVIDER_KEY_ENV_PATTERN = r"^[A-Z_]+$"

    refused = operator.post(ADD, _form(api_key_env="SECRET_KEY"))
    refused_file = operator.post(ADD, _form(api_key_env="REDIS_PASSWORD_FILE"))
    accepted = operator.post(ADD, _form(api_key_env="ACME_TOKEN"))

    assert "Not a provider key variable" in refused.content.decode()
    assert "Not a provider key variable" in refused_file.content.decode()
    assert accepted.status_code == 302
    assert Provider.objects.get().api_key_env == "ACME_TOKEN"


@pytest.mark.parametrize(
    "url",
    ["http://api.acme.example/v1", "ftp://api.acme.example/v1", "https://10.0.0.5/v1", "https://169.254.169.254/v1"],
    ids=["plain-http", "other-scheme", "private-address", "link-local-metadata"],
)
def test_a_base_url_that_is_not_https_to_a_public_host_is_refused_unless_allowlisted(operator, url):
    response = operator.post(ADD, _form(base_url=url))

    assert response.status_code == 200
    assert not Provider.objects.exists()


def test_allowlisted_hosts_may_use_plain_http(operator, settings):
    settings.GATEWAY_PROVIDER_HTTP_HOSTS = [*settings.GATEWAY_PROVIDER_HTTP_HOSTS, "llm.internal"]

    local = operator.post(ADD, _form(name="local", base_url="http://127.0.0.1:8081/v1", api_key_env=""))
    engine = operator.post(ADD, _form(name="engine", base_url="http://llm.internal:8081/v1", api_key_env=""))

    assert local.status_code == engine.status_code == 302
    assert set(Provider.objects.values_list("name", flat=True)) == {"local", "engine"}


def test_a_row_edited_around_the_form_has_its_key_refused_at_use(db, monkeypatch, caplog):
    monkeypatch.setenv("SECRET_KEY", "the-gateways-own-secret")
    provider = ProviderFactory(base_url="https://api.acme.example/v1")
    Provider.objects.filter(pk=provider.pk).update(api_key_env="SECRET_KEY")  # SQL, no validation
    provider.refresh_from_db()

    with caplog.at_level(logging.ERROR), pytest.raises(ProviderNotTrusted):
        provider.api_key()

    assert "outside the trust boundary" in caplog.text
    assert "the-gateways-own-secret" not in caplog.text


def test_the_upstream_is_never_called_with_a_secret_it_must_not_get(authed, standin, db, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "the-gateways-own-secret")
    version = ChatVersionFactory(provider=ProviderFactory(name="standin", base_url=standin.url))
    Provider.objects.filter(pk=version.provider_id).update(api_key_env="SECRET_KEY")

    response = authed.post(
        "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}, format="json"
    )

    assert response.status_code >= 500
    assert standin.requests == []  # not called at all, let alone with the secret
    assert "the-gateways-own-secret" not in response.content.decode()
    assert RequestLog.objects.get().status_code == response.status_code


@pytest.fixture
def refusing_upstream():
    """An upstream that refuses every call with a body no operator or caller must be shown."""

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"error": {"message": f"Incorrect API key provided: {LEAKED}"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = f"<html><body>Bad request at proxy for {LEAKED}</body></html>".encode()
            self.send_response(400)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


LEAKED = "sk-live-abc123 (database db-7.internal)"


def test_test_connection_shows_no_upstream_body_only_an_error_id_for_the_log(operator, refusing_upstream, caplog):
    provider = ProviderFactory(name="broken", base_url=refusing_upstream)

    with caplog.at_level(logging.WARNING):
        response = operator.post(
            "/admin/inference/provider/",
            {"action": "test_connection", "_selected_action": [provider.pk]},
            follow=True,
        )

    page = response.content.decode()
    assert LEAKED not in page and "Incorrect API key" not in page
    (error_id,) = re.findall(
        r"[Bb]roken: failed \(AuthenticationError\); details in the log under error ([0-9a-f]{12})", page
    )
    assert f"error {error_id}" in caplog.text
    assert LEAKED in caplog.text  # the operator with log access finds what happened


def test_a_caller_never_gets_an_upstreams_raw_error_body(authed, refusing_upstream, monkeypatch, caplog):
    monkeypatch.setenv("STANDIN_API_KEY", "sk-standin-secret")
    ChatVersionFactory(provider=ProviderFactory(name="proxied", base_url=refusing_upstream))

    with caplog.at_level(logging.WARNING):
        response = authed.post(
            "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}, format="json"
        )

    assert response.status_code == 400
    assert LEAKED not in response.content.decode()
    assert response.json()["error"]["type"] == "upstream_refused"
    assert LEAKED in caplog.text
