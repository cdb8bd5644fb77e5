import pytest

from inference.models import Status
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.usefixtures("default_models")


@pytest.mark.parametrize(
    ("text", "label"),
    [("I loved it", "POSITIVE"), ("a dull, boring waste of time", "NEGATIVE")],
    ids=["positive", "negative"],
)
def test_default_sentiment_model_labels_text(authed, text, label):
    response = authed.post("/api/v1/predict", {"text": text}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["label"] == label
    assert 0.5 < body["confidence"] <= 1.0
    assert body["scores"][label] == body["confidence"]
    assert body["model"] == "sentiment"
    assert body["model_version"] == "sst2-head-minilm-v1"
    assert body["cached"] is False
    assert body["request_id"] == response["X-Request-ID"]


def test_curl_default_content_type_is_read_as_json(client, api_key):
    # `curl -d '{...}'` sends application/x-www-form-urlencoded.
    response = client.post(
        "/api/v1/predict",
        data='{"text": "I loved it"}',
        content_type="application/x-www-form-urlencoded",
        HTTP_X_API_KEY=api_key.plaintext,
    )

    assert response.status_code == 200
    assert response.json()["label"] == "POSITIVE"


def test_seed_predict_path_answers_label_and_confidence(client, api_key):
    response = client.post(
        "/predict", {"text": "I loved it"}, format="json", HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}"
    )

    assert response.status_code == 200
    assert response.json()["label"] == "POSITIVE"
    assert isinstance(response.json()["confidence"], float)


def test_model_can_be_pinned_by_name_and_version(authed):
    staged = ModelVersionFactory(name="sentiment", version="candidate", status=Status.STAGING)

    response = authed.post("/api/v1/predict", {"text": "I loved it", "model": "sentiment:candidate"}, format="json")

    assert response.status_code == 200
    assert response.json()["model_version"] == staged.version


def test_unknown_model_is_a_404(authed):
    response = authed.post("/api/v1/predict", {"text": "hello", "model": "nope"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "model_not_found"


def test_archived_version_cannot_be_pinned(authed):
    ModelVersionFactory(name="sentiment", version="old", status=Status.ARCHIVED)

    response = authed.post("/api/v1/predict", {"text": "hello", "model": "sentiment:old"}, format="json")

    assert response.status_code == 404


def test_embeddings_are_unit_vectors_with_usage(authed):
    response = authed.post("/api/v1/embeddings", {"input": ["I loved it", "a dull film"]}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert [item["index"] for item in body["data"]] == [0, 1]
    vector = body["data"][0]["embedding"]
    assert len(vector) == 384
    assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-4)
    assert body["usage"]["prompt_tokens"] > 0
    assert body["model"] == "embeddings"


def test_similar_texts_have_closer_embeddings(authed):
    response = authed.post(
        "/api/v1/embeddings",
        {"input": ["The cat sat on the mat.", "A cat was sitting on a rug.", "Quarterly tax filing deadlines"]},
        format="json",
    )
    cat, kitten, tax = (item["embedding"] for item in response.json()["data"])

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert dot(cat, kitten) > dot(cat, tax) + 0.3


def test_single_string_input_gives_one_embedding(authed):
    response = authed.post("/api/v1/embeddings", {"input": "hello"}, format="json")

    assert response.status_code == 200
    assert len(response.json()["data"]) == 1
