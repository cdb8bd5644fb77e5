import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from gateway.metrics import families
from tests.servers import ROOT
from tests.test_deployment import COMPOSE_SECRETS

PROMETHEUS = ROOT / "prometheus"
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (.ci/run installs it)")


def _exposed_names() -> set[str]:
    """Every series name the gateway's own metrics expose."""
    names = set()
    for metric in vars(families).values():
        if isinstance(metric, Counter):
            names.add(f"{metric._name}_total")
        elif isinstance(metric, Histogram):
            names.update(f"{metric._name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        elif isinstance(metric, Gauge):
            names.add(metric._name)
    return names


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True)


@needs_promtool
def test_prometheus_config_and_its_rules_are_valid(tmp_path):
    # promtool wants the token file to exist: the deployment's is a compose secret.
    token = tmp_path / "metrics_token"
    token.write_text("scrape-secret\n")
    config = (PROMETHEUS / "prometheus.yml").read_text().replace("/run/secrets/metrics_token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")

    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 rules found" in result.stdout


@needs_promtool
def test_alerts_fire_on_the_series_they_watch():
    result = _promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"))

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_complete_and_watches_a_metric_the_gateway_exposes():
    rules = [
        rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for rule in group["rules"]
    ]
    exposed = _exposed_names() | {"up"}

    assert {rule["alert"] for rule in rules} >= {
        "GatewayHighErrorRate",
        "GatewayHighP99Latency",
        "GatewayBudgetNearlySpent",
        "GatewayBudgetExhausted",
        "GatewayCircuitBreakerOpen",
        "GatewayBatchBacklog",
        "PredictionHighErrorRate",
        "PredictionHighP99Latency",
        "ModelErrors",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        watched = set(
            re.findall(
                r"\b(gateway_[a-z_]+|prediction_[a-z_]+|model_errors_total|up)\b(?=\s*[{\[)=<>]|\s*$)", rule["expr"]
            )
        )
        assert watched, rule["alert"]
        assert watched <= exposed, (rule["alert"], watched - exposed)


def test_prometheus_scrapes_the_gateway_metrics_path_with_the_token_from_a_file():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())

    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_runs_prometheus_on_these_files_and_the_maintenance_worker():
    result = subprocess.run(
        ["docker-compose", "config"],
        cwd=ROOT,
        env={**os.environ, **COMPOSE_SECRETS},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    # docker-compose 1.x prints volumes as "source:target:mode", 2.x as mappings.
    mounts = [
        (v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
        for v in services["prometheus"]["volumes"]
    ]
    assert (str(PROMETHEUS), "/etc/prometheus") in mounts
    assert "web" in services["web"]["environment"]["ALLOWED_HOSTS"].split(",")  # Prometheus's Host header
    assert "maintenance" in services["maintenance"]["command"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]  # the one scheduler
    # Prometheus reads the token the gateway checks: one compose secret for both.
    assert services["web"]["environment"]["GATEWAY_METRICS_TOKEN_FILE"] == "/run/secrets/metrics_token"
    assert [s if isinstance(s, str) else s["source"] for s in services["prometheus"]["secrets"]] == ["metrics_token"]
