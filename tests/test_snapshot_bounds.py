"""Outsiders can neither grow the configuration snapshot nor push out what real traffic needs."""

import pytest

from gateway.caching import snapshot

pytestmark = pytest.mark.usefixtures("default_models")


@pytest.fixture(autouse=True)
def _needs_shared_cache(settings):
    if not settings.GATEWAY_SNAPSHOT_ENABLED:
        pytest.skip("the snapshot needs REDIS_URL (make test)")


def test_prefixes_of_no_key_are_not_kept(client, authed):
    authed.post("/api/v1/predict", {"text": "I loved it"}, format="json")
    kept = len(snapshot._entries)

    for i in range(20):
        client.post("/api/v1/predict", {"text": "x"}, format="json", HTTP_X_API_KEY=f"gw_Guess{i:03d}.{'A' * 43}")

    assert len(snapshot._entries) == kept


def test_the_least_recently_used_entry_goes_first(monkeypatch):
    monkeypatch.setattr(snapshot, "MAX_ENTRIES", 3)
    loads = []

    def read(name):
        return snapshot.read(("test", name), lambda: loads.append(name) or name)

    for name in ("a", "b", "c", "a", "d", "a", "b"):
        read(name)

    # "a" was used again before "d" came, so "b" (the least recently used) made room instead.
    assert loads == ["a", "b", "c", "d", "b"]
