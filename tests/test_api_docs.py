"""Interactive API docs, served offline (drf-spectacular-sidecar), linked from the admin, with the
OpenAI-compatible endpoints, their shapes, the error shape and both ways to present a key."""

import re

import pytest
import yaml
from django.contrib.staticfiles import finders


@pytest.mark.parametrize("path", ["/api/docs", "/api/redoc"])
def test_docs_pages_load_their_scripts_from_this_server(client, db, path):
    response = client.get(path)

    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r'src="([^"]+\.js)"', html)
    assert scripts and all(src.startswith("/static/drf_spectacular_sidecar/") for src in scripts)
    assert all(finders.find(src.removeprefix("/static/")) for src in scripts)
    assert "/api/schema" in html


def test_schema_documents_the_openai_endpoints_errors_and_keys(client, db):
    schema = yaml.safe_load(client.get("/api/schema").content)

    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatCompletionRequest")
    answers = chat["responses"]["200"]["content"]
    assert answers["application/json"]["schema"]["$ref"].endswith("/ChatCompletion")
    assert "text/event-stream" in answers
    for status in ("400", "401", "429", "502", "503"):
        assert chat["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert chat["security"] == [{"ApiKeyHeader": []}, {"BearerAuth": []}]
    assert {"/v1/embeddings", "/v1/models"} <= set(schema["paths"])
    components = schema["components"]
    assert set(components["schemas"]["ErrorDetail"]["properties"]) >= {"type", "code", "message", "request_id"}
    assert components["securitySchemes"]["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The original service's header.",
    }
    assert components["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"


def test_admin_pages_link_the_docs(staff_client):
    page = staff_client.get("/admin/").content.decode()

    assert 'href="/api/docs"' in page
