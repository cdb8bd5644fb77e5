"""The client's address (gateway/limits/addresses.py) and the limits per address that refuse a
flood before any database work."""

import pytest
from django.db import connection
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from gateway.limits.addresses import client_address
from gateway.models import RequestLog

pytestmark = pytest.mark.usefixtures("default_models")

PREDICT = "/api/v1/predict"
BAD_KEY = "gw_ZZZZZZZZ." + "A" * 43


def _address(remote, forwarded=None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


def test_the_sender_is_the_client_when_proxies_are_not_trusted():
    assert _address("203.0.113.7", "198.51.100.1") == "203.0.113.7"


@override_settings(GATEWAY_TRUST_X_FORWARDED_FOR=True, GATEWAY_TRUSTED_PROXIES=["10.0.0.0/8"])
@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # The client writes the left of the header: the right-most hop no proxy of ours added wins.
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        ("10.0.0.2", "x", None),
        ("10.0.0.2", "198.51.100.1, <script>", None),
        ("10.0.0.2", "2001:db8::1", "2001:db8::1"),
        ("10.0.0.2", "", "10.0.0.2"),
        # Only a trusted proxy's header counts.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
    ],
    ids=["one-hop", "spoofed-left", "two-proxies", "not-an-address", "junk-hop", "ipv6", "no-header", "untrusted"],
)
def test_a_trusted_proxys_header_gives_the_right_most_untrusted_hop_if_it_is_an_address(remote, forwarded, client):
    assert _address(remote, forwarded) == client


def _predict(client, key=BAD_KEY, address="198.51.100.20"):
    return client.post(PREDICT, {"text": "I loved it"}, format="json", HTTP_X_API_KEY=key, REMOTE_ADDR=address)


@override_settings(GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS=3)
def test_an_address_past_its_failed_authentications_is_refused_before_any_database_work(client, api_key):
    assert [_predict(client).status_code for _ in range(3)] == [401, 401, 401]

    with CaptureQueriesContext(connection) as queries:
        refused = _predict(client, api_key.plaintext)  # a valid key from that address, too

    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limited"
    assert "failed authentications" in refused.json()["error"]["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert len(queries) == 0
    assert not RequestLog.objects.filter(request_id=refused["X-Request-ID"]).exists()
    assert _predict(client, api_key.plaintext, address="198.51.100.21").status_code == 200


@override_settings(GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS=3)
def test_requests_without_a_key_count_as_failed_authentications(client):
    for _ in range(3):
        assert client.post(PREDICT, {"text": "x"}, format="json", REMOTE_ADDR="198.51.100.22").status_code == 401

    assert client.post(PREDICT, {"text": "x"}, format="json", REMOTE_ADDR="198.51.100.22").status_code == 429


@override_settings(GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS=2)
def test_an_address_past_its_ceiling_is_refused_whatever_its_keys(client, api_key, roomy_window):
    roomy_window(api_key, 5)
    answers = [_predict(client, api_key.plaintext, address="198.51.100.23") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "2 requests per minute" in answers[-1].json()["error"]["message"]


def test_health_and_admin_pages_are_not_counted_against_an_address(client, settings):
    settings.GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS = 1

    assert [client.get("/health").status_code for _ in range(3)] == [200, 200, 200]
