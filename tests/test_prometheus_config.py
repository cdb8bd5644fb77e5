import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from gateway.metrics import families
from tests.servers import ROOT

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
def test_prometheus_config_and_its_rules_are_valid():
    result = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))

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


def test_prometheus_scrapes_the_gateway_metrics_path():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())

    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_runs_prometheus_on_these_files_and_the_maintenance_worker():
    result = subprocess.run(
        ["docker-compose", "config"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "validation-only"},
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
