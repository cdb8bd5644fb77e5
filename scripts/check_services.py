"""Say whether the PostgreSQL and Redis the tests need are reachable, and how to start them."""

import os
import socket
import sys
from urllib.parse import urlparse

HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
}


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def main() -> int:
    services = [
        ("PostgreSQL", os.environ["DATABASE_URL"], 5432),
        ("Redis", os.environ["REDIS_URL"], 6379),
    ]
    down = [(name, url) for name, url, port in services if not reachable(url, port)]
    for name, url in down:
        print(f"{name} is not reachable at {url}. Start it, e.g.:\n    {HOW_TO_START[name]}", file=sys.stderr)
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main())
