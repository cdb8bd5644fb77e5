"""`manage.py check --deploy --fail-level WARNING` under the environment docker-compose.yml
gives the web service, with placeholder secrets: exits non-zero on any finding (make lint, CI).

The environment is taken from `docker-compose config`, so the check follows every change to
the compose file; compose secrets (/run/secrets/<name>) are replaced by placeholder files.
"""

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "POSTGRES_PASSWORD": secrets.token_hex(16),
    "REDIS_PASSWORD": secrets.token_hex(16),
}


def web_environment(secrets_dir: Path) -> dict[str, str]:
    config = subprocess.run(
        ["docker-compose", "config"],
        cwd=ROOT,
        env={**os.environ, **PLACEHOLDERS},
        capture_output=True,
        text=True,
        check=True,
    )
    environment = {
        name: str(value or "")
        for name, value in yaml.safe_load(config.stdout)["services"]["web"]["environment"].items()
    }
    for name, value in environment.items():
        if value.startswith("/run/secrets/"):
            placeholder = secrets_dir / Path(value).name
            placeholder.write_text(secrets.token_urlsafe(32))
            environment[name] = str(placeholder)
    return environment


def main() -> int:
    with tempfile.TemporaryDirectory() as secrets_dir:
        environment = web_environment(Path(secrets_dir))
        # Only what the container would have: nothing of this shell's own settings leaks in.
        base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env={**base, **environment},
        )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
