"""Two gateway nodes behind a real HAProxy: limits, budgets, keys, the cache and experiments
hold across machines, and the balancer routes around a node that dies.

Each node is a gunicorn master of its own (its own port, Prometheus directory and hash seed);
they share only PostgreSQL and Redis. Every request goes through the balancer, which names the
node that answered in `X-Served-By`.
"""

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from experiments.assignment import bucket_for, pick
from gateway.keys.services import api_key_revoke
from gateway.models import RequestLog
from inference.models import ModelVersion, Status
from tests.factories import (
    APIKeyFactory,
    ModelVersionFactory,
    TeamFactory,
    sentiment_priced_per_request,
    started_experiment,
)
from tests.servers import Balancer, Node, gunicorn_node, haproxy, served_database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_models")]


def _node_env(tmp_path_factory, name: str, seed: str) -> dict:
    return {
        "DATABASE_URL": served_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "WEB_WORKERS": "1",
        "WEB_THREADS": "16",
        "TORCH_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp(f"prometheus-{name}")),
        "PYTHONHASHSEED": seed,
        # The text on each row tells which request it logs, answered or not.
        "GATEWAY_LOG_REQUEST_TEXT": "true",
    }


@dataclass
class Cluster:
    balancer: Balancer
    nodes: dict[str, Node]

    @property
    def url(self) -> str:
        return self.balancer.url


@pytest.fixture(scope="module")
def cluster(django_db_setup, tmp_path_factory):
    """Nodes `a` and `b` behind one HAProxy; the tests send their requests to its URL only."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the nodes share the test database and Redis: run on PostgreSQL and Redis (make test)")
    with ExitStack() as stack:
        nodes = {
            name: stack.enter_context(gunicorn_node(_node_env(tmp_path_factory, name, seed)))
            for name, seed in (("a", "1"), ("b", "2"))
        }
        yield Cluster(stack.enter_context(haproxy({name: node.port for name, node in nodes.items()})), nodes)


@pytest.fixture(autouse=True)
def _nodes_hold_the_current_versions(cluster, default_models):
    _load_versions(cluster)


def _load_versions(cluster: Cluster) -> None:
    """Each node loads the production versions created for the test, on a request sent to it
    directly, so the balancer has both back before the test starts (/ready answers 503 while a
    node has yet to load one)."""
    warm = APIKeyFactory()
    for name, node in cluster.nodes.items():  # a text of its own each: a cached answer loads nothing
        assert _post(node.url, "/api/v1/predict", {"text": f"warm up {name}"}, warm).status == 200
        assert _post(node.url, "/api/v1/embeddings", {"input": f"warm up {name}"}, warm).status == 200
    deadline = time.monotonic() + 10
    while not all(s["status"] == "UP" for s in cluster.balancer.servers().values()):
        assert time.monotonic() < deadline, cluster.balancer.servers()
        time.sleep(0.05)


@dataclass
class Answer:
    status: int
    node: str | None  # None: answered by the balancer itself
    body: dict | None
    request_id: str | None


def _post(base: str, path: str, body: dict, key, headers=None, timeout=30) -> Answer:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": key.plaintext, **(headers or {})},
    )
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        payload = response.read()
        parsed = json.loads(payload) if response.headers.get_content_type() == "application/json" else None
        return Answer(response.status, response.headers["X-Served-By"], parsed, response.headers["X-Request-ID"])


def _predict(cluster, key, text="I loved it", headers=None) -> Answer:
    return _post(cluster.url, "/api/v1/predict", {"text": text}, key, headers)


def _burst(cluster, key, texts) -> list[Answer]:
    with ThreadPoolExecutor(len(texts)) as pool:
        return list(pool.map(lambda text: _predict(cluster, key, text), texts))


def test_per_minute_limit_of_n_admits_exactly_n_of_n_plus_k_requests_spread_over_both_nodes(cluster, roomy_window):
    n, k = 10, 8
    key = APIKeyFactory(requests_per_minute=n)
    roomy_window(key, 20)

    answers = _burst(cluster, key, [f"review number {i}" for i in range(n + k)])

    assert Counter(a.status for a in answers) == {200: n, 429: k}
    assert Counter(a.node for a in answers) == {"a": (n + k) // 2, "b": (n + k) // 2}
    assert RequestLog.objects.filter(api_key=key, status_code=200).count() == n


def test_budget_is_overrun_by_at_most_one_request_at_50_concurrent_requests_over_both_nodes(cluster):
    version = sentiment_priced_per_request("0.01")
    _load_versions(cluster)
    budget = Decimal("0.10")
    key = APIKeyFactory(team=TeamFactory(budget_usd=budget))

    answers = _burst(cluster, key, [f"a review, number {i}" for i in range(50)])

    spent = RequestLog.objects.filter(api_key=key).aggregate(total=Sum("cost_usd"))["total"]
    assert spent <= budget + version.cost_per_request
    assert Counter(a.status for a in answers) == {200: 10, 402: 40}
    assert Counter(a.node for a in answers) == {"a": 25, "b": 25}


def test_revoked_key_is_refused_by_both_nodes_on_the_next_request(cluster):
    key = APIKeyFactory()
    before = [_predict(cluster, key) for _ in range(2)]
    assert [(a.status, a.node) for a in sorted(before, key=lambda a: a.node)] == [(200, "a"), (200, "b")]

    api_key_revoke(key=key, actor="tests")
    after = [_predict(cluster, key) for _ in range(2)]

    assert [(a.status, a.node) for a in sorted(after, key=lambda a: a.node)] == [(401, "a"), (401, "b")]
    assert {a.body["error"]["message"] for a in after} == {"This API key has been revoked."}


def test_answer_cached_through_one_node_is_a_hit_through_the_other(cluster):
    key = APIKeyFactory()

    filled, hit = _predict(cluster, key, "the cast was superb"), _predict(cluster, key, "the cast was superb")

    assert {filled.node, hit.node} == {"a", "b"}
    assert (filled.status, filled.body["cached"]) == (200, False)
    assert (hit.status, hit.body["cached"]) == (200, True)
    assert hit.body["label"] == filled.body["label"]


def test_sticky_experiment_assignment_is_the_same_on_both_nodes(cluster):
    production = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    experiment = started_experiment(("control", production, 50), ("treatment", ModelVersionFactory(version="b"), 50))
    key = APIKeyFactory()
    users = [f"user-{i}" for i in range(16)]

    answers = {user: [_predict(cluster, key, headers={"X-User-ID": user}) for _ in range(2)] for user in users}

    expected = {
        user: pick([("control", 50), ("treatment", 50)], bucket_for(experiment.salt, f"user:{user}")) for user in users
    }
    for user, (first, second) in answers.items():
        assert {first.node, second.node} == {"a", "b"}
        assert first.body["variant"] == second.body["variant"] == expected[user]
    assert set(expected.values()) == {"control", "treatment"}


def test_editing_a_production_version_keeps_both_nodes_in_the_balancer(cluster):
    sentiment_priced_per_request("0.02")
    time.sleep(1)  # three health checks

    answers = [_predict(cluster, APIKeyFactory()) for _ in range(2)]

    assert [(a.status, a.node) for a in sorted(answers, key=lambda a: a.node or "")] == [(200, "a"), (200, "b")]


@dataclass
class Sent:
    text: str
    started: float
    ended: float
    answer: Answer | None  # None: the connection failed


def _steady_load(url: str, key, clients: int, stop: threading.Event) -> tuple[list[Sent], list[threading.Thread]]:
    """`clients` threads, each sending one request after the other until `stop` is set; what
    they sent fills the list as they go."""
    sent: list[Sent] = []

    def client(number: int) -> None:
        i = 0
        while not stop.is_set():
            text = f"steady load, client {number}, request {i}"
            started = time.monotonic()
            try:
                answer = _post(url, "/api/v1/predict", {"text": text}, key)
            except OSError:
                answer = None
            sent.append(Sent(text, started, time.monotonic(), answer))
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    return sent, threads


def _refused_from(port: int) -> float:
    """When connections to the port are refused: its processes have all exited, and with them
    the listening socket (until then the kernel still accepts connections for it)."""
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return time.monotonic()
        time.sleep(0.005)


def test_node_killed_under_load_is_taken_out_with_only_its_in_flight_requests_failed_and_one_log_row_per_answer(
    cluster, tmp_path_factory
):
    key = APIKeyFactory(requests_per_minute=100_000)  # steady load: past the default 100 a minute
    stop = threading.Event()
    with (
        gunicorn_node(_node_env(tmp_path_factory, "doomed", "3")) as doomed,
        haproxy({"survivor": cluster.nodes["a"].port, "doomed": doomed.port}) as balancer,
    ):
        sent, threads = _steady_load(balancer.url, key, clients=4, stop=stop)
        try:
            time.sleep(2)
            killed_at = time.monotonic()
            doomed.kill()
            gone_at = _refused_from(doomed.port)
            while not balancer.servers()["doomed"]["status"].startswith("DOWN"):
                assert time.monotonic() < killed_at + 10, "the balancer kept the dead node"
                time.sleep(0.05)
            down_at, sent_to_dead_node = time.monotonic(), balancer.servers()["doomed"]["stot"]
            time.sleep(2)
            sent_to_dead_node_at_end = balancer.servers()["doomed"]["stot"]
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    answered = [s for s in sent if s.answer and s.answer.status == 200]
    failed = [s for s in sent if not (s.answer and s.answer.status == 200)]
    assert {s.answer.node for s in answered if s.ended < killed_at} == {"survivor", "doomed"}
    # Once down, the dead node gets nothing more, and every request is answered by the other.
    assert sent_to_dead_node_at_end == sent_to_dead_node
    after = [s for s in sent if s.started > down_at]
    assert len(after) > 10
    assert {(s.answer.status, s.answer.node) for s in after} == {(200, "survivor")}
    # Only requests sent to it before it was gone fail, and they fail as it goes.
    assert all(s.started < gone_at and killed_at < s.ended < gone_at + 2 for s in failed), (killed_at, gone_at, failed)
    # One row per answered request; a failed one has at most the row its node wrote before dying.
    rows = RequestLog.objects.filter(api_key=key)
    assert all(count == 1 for count in Counter(rows.values_list("input_text", flat=True)).values())
    assert {s.answer.request_id for s in answered} <= {str(r) for r in rows.values_list("request_id", flat=True)}
    assert set(rows.values_list("input_text", flat=True)) - {s.text for s in answered} <= {s.text for s in failed}
