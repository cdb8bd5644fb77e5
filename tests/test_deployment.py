import os
import shutil
import subprocess

import pytest

from tests.servers import ROOT

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)"
)


@needs_compose
def test_docker_compose_file_is_valid():
    result = subprocess.run(
        ["docker-compose", "config", "--quiet"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "validation-only"},
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr


@needs_compose
def test_docker_compose_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}

    result = subprocess.run(["docker-compose", "config", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
