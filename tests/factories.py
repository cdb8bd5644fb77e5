import factory
from django.contrib.auth import get_user_model

from gateway.models import APIKey
from inference.management.commands.bootstrap import PACKAGED_MODEL, SENTIMENT_PROTOTYPES
from inference.models import Backend, ModelVersion, Status, Task


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


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")
