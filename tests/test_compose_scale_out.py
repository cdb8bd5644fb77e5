"""The compose stack scales out: HAProxy in front of every `web` replica (found by DNS),
Prometheus scraping each replica, Alertmanager sending the alerts on, and a GPU override.
Checked offline: `docker-compose config` and `haproxy -c` need no Docker engine."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.servers import HAPROXY, ROOT

HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
ALERTMANAGER_YML = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)"
)


def _compose_config(*files: str) -> dict:
    arguments = [argument for name in files for argument in ("-f", name)]
    result = subprocess.run(
        ["docker-compose", *arguments, "config"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "validation-only", "POSTGRES_PASSWORD": "x", "REDIS_PASSWORD": "x"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return yaml.safe_load(result.stdout)


def _published(service: dict) -> set[int]:
    # docker-compose 1.x prints ports as mappings {published, target}, older as "host:container".
    return {int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1]) for p in service.get("ports", [])}


def _mounts(service: dict) -> set[tuple[str, str]]:
    return {(v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2]) for v in service["volumes"]}


@needs_compose
@pytest.mark.parametrize(
    "files", [("docker-compose.yml",), ("docker-compose.yml", "docker-compose.gpu.yml")], ids=["base", "gpu"]
)
def test_compose_config_is_clean(files):
    assert _compose_config(*files)["services"]


@needs_compose
def test_only_the_load_balancer_publishes_the_gateway_so_web_scales():
    config = _compose_config("docker-compose.yml")
    services = config["services"]

    assert [name for name, service in services.items() if 8000 in _published(service)] == ["loadbalancer"]
    assert not services["web"].get("ports")
    assert "container_name" not in services["web"]
    assert services["loadbalancer"]["image"].startswith("haproxy:")
    assert (str(HAPROXY_CFG), "/usr/local/etc/haproxy/haproxy.cfg") in _mounts(services["loadbalancer"])
    # The balancer reaches the replicas on its own network, whose subnet the gateway trusts.
    assert "edge" in services["loadbalancer"]["networks"] and "edge" in services["web"]["networks"]
    (subnet,) = [entry["subnet"] for entry in config["networks"]["edge"]["ipam"]["config"]]
    assert services["web"]["environment"]["GATEWAY_TRUSTED_PROXIES"] == subnet


def test_haproxy_finds_replicas_by_dns_checks_ready_and_retries_on_another_node():
    config = HAPROXY_CFG.read_text()

    assert re.search(r"^\s*server-template web 1-10 web:8000 check resolvers docker init-addr none$", config, re.M)
    assert re.search(r"^\s*nameserver \S+ 127\.0\.0\.11:53$", config, re.M)
    assert "http-check send meth GET uri /ready" in config
    assert re.search(r"^\s*retry-on conn-failure empty-response$", config, re.M)
    assert re.search(r"^\s*option redispatch", config, re.M)
    assert "http-request disable-l7-retry unless METH_GET" in config
    assert re.search(r"^\s*option forwardfor$", config, re.M)


@pytest.mark.skipif(not os.access(HAPROXY, os.X_OK), reason="haproxy is not installed (.ci/run installs it)")
def test_haproxy_accepts_the_compose_config():
    result = subprocess.run([HAPROXY, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


@needs_compose
def test_prometheus_scrapes_every_replica_and_alertmanager_sends_alerts_to_the_webhook():
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert "static_configs" not in job
    assert job["dns_sd_configs"] == [{"names": ["web"], "type": "A", "port": 8000, "refresh_interval": "15s"}]
    targets = [t for m in prometheus["alerting"]["alertmanagers"] for c in m["static_configs"] for t in c["targets"]]
    assert targets == ["alertmanager:9093"]

    services = _compose_config("docker-compose.yml")["services"]
    alertmanager = services["alertmanager"]
    assert (str(ALERTMANAGER_YML.parent), "/etc/alertmanager") in _mounts(alertmanager)
    assert "ALERTMANAGER_WEBHOOK_URL" in alertmanager["environment"]
    routes = yaml.safe_load(ALERTMANAGER_YML.read_text())
    (receiver,) = routes["receivers"]
    assert routes["route"]["receiver"] == receiver["name"]
    (webhook,) = receiver["webhook_configs"]
    # The URL file is the one the container writes from ALERTMANAGER_WEBHOOK_URL at start.
    assert f"> {webhook['url_file']}" in " ".join(alertmanager["command"])
    # Each replica names itself a host, since Prometheus scrapes it by its address.
    assert "hostname -I" in " ".join(services["web"]["command"])


@needs_compose
def test_gpu_override_reserves_a_gpu_for_web_and_worker_and_installs_cuda_torch():
    services = _compose_config("docker-compose.yml", "docker-compose.gpu.yml")["services"]

    for name in ("web", "worker"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert (device["driver"], device["count"], device["capabilities"]) == ("nvidia", 1, ["gpu"])
        assert services[name]["build"]["dockerfile"] == "deploy/gpu/Dockerfile"
    assert "deploy" not in services["beat"]
    dockerfile = (ROOT / "deploy" / "gpu" / "Dockerfile").read_text()
    assert re.search(r'pip install .*"torch==\$\{TORCH_VERSION\}" --index-url "\S+/whl/\$\{TORCH_CUDA\}"', dockerfile)
