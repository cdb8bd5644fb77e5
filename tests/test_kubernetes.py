"""The Kubernetes manifests (deploy/kubernetes): every file a kustomization names exists and is
a valid resource for the Kubernetes version we support, offline (kubernetes-validate's
schemas), and the deployment keeps its promises: one beat, probes on /health and /ready,
memory bounds on every container, secrets referenced and never written in."""

import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from tests.servers import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAY = KUBERNETES / "overlays" / "example"
OLDEST_SUPPORTED = "1.30.0"
KUSTOMIZATIONS = [BASE, OVERLAY]
SECRET_VARIABLES = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "GATEWAY_METRICS_TOKEN"}


def _documents(path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomization(directory) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def _named_files(directory) -> list:
    """The manifest files a kustomization names: its resources (other kustomizations aside)
    and its patch files."""
    kustomization = _kustomization(directory)
    named = [directory / entry for entry in kustomization.get("resources", [])]
    named += [directory / patch["path"] for patch in kustomization.get("patches", []) if "path" in patch]
    return [path for path in named if not path.is_dir()]


def _base_resources() -> list[dict]:
    return [doc for path in _named_files(BASE) for doc in _documents(path)]


def _one(kind: str, name: str) -> dict:
    (resource,) = [r for r in _base_resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return resource


def _containers(resource: dict) -> list[dict]:
    pod = resource["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.name)
def test_every_file_a_kustomization_names_exists_and_is_a_valid_resource(directory):
    kustomization = _kustomization(directory)
    for entry in kustomization["resources"]:
        path = directory / entry
        assert path.is_file() or (path / "kustomization.yaml").is_file(), entry
    for generator in kustomization.get("configMapGenerator", []):
        for env_file in generator.get("envs", []):
            assert (directory / env_file).is_file(), env_file

    for path in _named_files(directory):
        for document in _documents(path):
            # Raises with the offending field; strict: an unknown (misspelt) field is an error too.
            kubernetes_validate.validate(document, OLDEST_SUPPORTED, strict=True)


def test_the_example_secret_is_valid_but_never_applied():
    for document in _documents(BASE / "secret.example.yaml"):
        kubernetes_validate.validate(document, OLDEST_SUPPORTED, strict=True)

    assert "secret.example.yaml" not in _kustomization(BASE)["resources"]
    assert not [r for r in _base_resources() if r["kind"] == "Secret"]
    assert "secretGenerator" not in _kustomization(BASE)


def test_secrets_are_referenced_from_a_secret_and_never_written_in():
    config_keys = {line.split("=", 1)[0] for line in (BASE / "gateway.env").read_text().splitlines() if "=" in line} | {
        literal.split("=", 1)[0]
        for g in _kustomization(OVERLAY).get("configMapGenerator", [])
        for literal in g.get("literals", [])
    }
    assert not config_keys & SECRET_VARIABLES
    assert not [key for key in config_keys if key.endswith("_API_KEY")]

    workloads = [r for r in _base_resources() if r["kind"] in {"Deployment", "Job"}]
    for workload in workloads:
        for container in _containers(workload):
            for variable in container.get("env", []):
                if variable["name"] in SECRET_VARIABLES:
                    assert "value" not in variable, (workload["metadata"]["name"], variable["name"])
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == "gateway-secrets"
    database_users = [c for w in workloads for c in _containers(w) if c["name"] != "llm"]
    assert all("DATABASE_URL" in {v["name"] for v in c["env"]} for c in database_users)


def test_the_scheduler_runs_once_and_is_stopped_before_its_replacement_starts():
    beat = _one("Deployment", "gateway-beat")

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert [c["command"][:4] for c in _containers(beat)] == [["celery", "-A", "config", "beat"]]
    schedulers = [
        r["metadata"]["name"]
        for r in _base_resources()
        if r["kind"] == "Deployment"
        for c in _containers(r)
        if c.get("command", [])[:4] == ["celery", "-A", "config", "beat"] or "--beat" in c.get("command", [])
    ]
    assert schedulers == ["gateway-beat"]
    autoscaled = {
        r["spec"]["scaleTargetRef"]["name"] for r in _base_resources() if r["kind"] == "HorizontalPodAutoscaler"
    }
    assert "gateway-beat" not in autoscaled


def test_web_pods_are_ready_on_ready_and_alive_on_health():
    (web,) = [c for c in _containers(_one("Deployment", "gateway-web")) if c["name"] == "web"]

    assert web["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert web["livenessProbe"]["httpGet"]["path"] == "/health"
    assert web["startupProbe"]["httpGet"]["path"] == "/health"
    assert {p["containerPort"] for p in web["ports"]} == {8000}


def test_every_container_requests_memory_and_is_bounded():
    for workload in [r for r in _base_resources() if r["kind"] in {"Deployment", "Job"}]:
        for container in _containers(workload):
            resources = container["resources"]
            assert resources["requests"]["memory"] and resources["requests"]["cpu"], container["name"]
            assert resources["limits"]["memory"], container["name"]


def test_web_and_worker_scale_automatically_and_keep_pods_through_disruptions():
    deployments = {r["metadata"]["name"]: r for r in _base_resources() if r["kind"] == "Deployment"}
    assert set(deployments) == {"gateway-web", "gateway-worker", "gateway-maintenance", "gateway-beat", "gateway-llm"}
    autoscaled = {
        r["spec"]["scaleTargetRef"]["name"] for r in _base_resources() if r["kind"] == "HorizontalPodAutoscaler"
    }
    assert autoscaled == {"gateway-web", "gateway-worker"}
    for name in autoscaled:
        assert "replicas" not in deployments[name]["spec"]  # the autoscaler owns the count

    budgets = [r for r in _base_resources() if r["kind"] == "PodDisruptionBudget"]
    covered = {
        name
        for budget in budgets
        for name, deployment in deployments.items()
        if budget["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    }
    assert covered == {"gateway-web", "gateway-worker"}


def test_the_ingress_and_the_services_lead_to_the_web_pods_and_the_llm():
    services = {r["metadata"]["name"]: r for r in _base_resources() if r["kind"] == "Service"}
    deployments = {r["metadata"]["name"]: r for r in _base_resources() if r["kind"] == "Deployment"}
    for name in ("gateway-web", "gateway-llm"):
        selector = services[name]["spec"]["selector"]
        assert selector.items() <= deployments[name]["spec"]["template"]["metadata"]["labels"].items()

    ingress = _one("Ingress", "gateway")
    backends = {
        path["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]
    }
    assert backends == {"gateway-web"}
    migrate = _one("Job", "gateway-migrate")
    assert "migrate" in " ".join(migrate["spec"]["template"]["spec"]["containers"][0]["command"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.name)
def test_kustomize_renders_valid_resources(directory):
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for document in rendered:
        kubernetes_validate.validate(document, OLDEST_SUPPORTED, strict=True)
    kinds = {r["kind"] for r in rendered}
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "Job",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    } <= kinds
    assert "Secret" not in kinds
