from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from experiments.models import Experiment, Variant
from gateway.models import APIKey, RequestLog, Team
from inference.management.commands.bootstrap import PACKAGED_MODEL
from inference.models import Backend, ModelVersion, Provider, Status, Task

# Example texts per label for zero-shot versions; each label is the mean of their embeddings.
SENTIMENT_PROTOTYPES = {
    "POSITIVE": ["I loved it, it was great.", "A wonderful, delightful film.", "Excellent and enjoyable.", "good"],
    "NEGATIVE": ["I hated it, it was terrible.", "A boring, tedious mess.", "Awful and disappointing.", "bad"],
}


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    name = "sentiment"
    version = factory.Sequence(lambda n: f"v{n}")
    task = Task.TEXT_CLASSIFICATION
    backend = Backend.ZERO_SHOT
    source = PACKAGED_MODEL
    status = Status.STAGING
    labels = list(SENTIMENT_PROTOTYPES)
    config = {"prototypes": SENTIMENT_PROTOTYPES, "temperature": 0.05}


class APIKeyFactory(factory.django.DjangoModelFactory):
    """Builds a key row; the plaintext is on the instance as `.plaintext`, as a client would hold it."""

    class Meta:
        model = APIKey

    name = factory.Sequence(lambda n: f"key-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        key, plaintext = model_class.objects.create_key(**kwargs)
        key.plaintext = plaintext
        return key


class StaffUserFactory(factory.django.DjangoModelFactory):
    """An operator who may open the admin (staff), with the password STAFF_PASSWORD."""

    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"operator-{n}")
    is_staff = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.objects.create_user(*args, password=STAFF_PASSWORD, **kwargs)


STAFF_PASSWORD = "operator-password"


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"provider-{n}")
    base_url = "http://127.0.0.1:9/v1"
    api_key_env = "STANDIN_API_KEY"
    timeout_s = 2.0
    max_retries = 2


class ChatVersionFactory(ModelVersionFactory):
    name = "gpt"
    task = Task.CHAT
    backend = Backend.OPENAI
    source = ""
    labels = []
    config = {}
    provider = factory.SubFactory(ProviderFactory)
    upstream_model = factory.LazyAttribute(lambda v: f"upstream-{v.version}")
    status = Status.PRODUCTION
    input_cost_per_1k = Decimal("0.001")
    output_cost_per_1k = Decimal("0.002")


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"experiment-{n}")
    model_name = "sentiment"
    # Tests about the guardrail turn it on; elsewhere its background checks are noise.
    guardrail_enabled = False


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"variant-{n}")
    model_version = factory.SubFactory(ModelVersionFactory)
    weight = 50


class RequestLogFactory(factory.django.DjangoModelFactory):
    """A logged answer, as the middleware writes it."""

    class Meta:
        model = RequestLog

    method = "POST"
    endpoint = "/api/v1/predict"
    model_name = "sentiment"
    status_code = 200
    latency_ms = 10.0


def started_experiment(*variants: tuple[str, ModelVersion, int], shadows=(), **fields) -> Experiment:
    """A running experiment: variants are (name, version, weight), the first is control;
    shadows are (name, version, percent mirrored)."""
    from experiments.services import experiment_start

    experiment = ExperimentFactory(**fields)
    for index, (name, version, weight) in enumerate(variants):
        VariantFactory(experiment=experiment, name=name, model_version=version, weight=weight, is_control=index == 0)
    for name, version, percent in shadows:
        VariantFactory(experiment=experiment, name=name, model_version=version, weight=percent, mode="shadow")
    experiment_start(experiment, actor="tests")
    experiment.refresh_from_db()
    return experiment


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"team-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")


def sentiment_priced_per_request(amount, **changes) -> ModelVersion:
    """The default sentiment version at `amount` USD a request and nothing per token, so a
    request's cost (and its estimate) is exactly `amount`; `changes` set other fields too."""
    version = ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION)
    version.cost_per_request = Decimal(amount)
    version.input_cost_per_1k = version.output_cost_per_1k = 0
    for field, value in changes.items():
        setattr(version, field, value)
    version.save()
    return version
