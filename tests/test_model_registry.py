import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from inference import registry
from inference.models import Backend, ModelVersion, Status, Task
from tests.factories import ModelVersionFactory


@pytest.mark.django_db
def test_promotion_keeps_one_production_version_per_name():
    first = ModelVersionFactory(version="1")
    second = ModelVersionFactory(version="2")
    first.promote()

    second.promote()

    first.refresh_from_db()
    assert first.status == Status.STAGING
    assert second.status == Status.PRODUCTION
    assert second.promoted_at is not None
    assert list(ModelVersion.objects.filter(status=Status.PRODUCTION)) == [second]


@pytest.mark.django_db
def test_promotion_leaves_other_names_alone():
    other = ModelVersionFactory(name="toxicity", version="1")
    other.promote()

    ModelVersionFactory(version="1").promote()

    other.refresh_from_db()
    assert other.status == Status.PRODUCTION


@pytest.mark.django_db
def test_database_refuses_a_second_production_version():
    ModelVersionFactory(version="1", status=Status.PRODUCTION)

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersionFactory(version="2", status=Status.PRODUCTION)


@pytest.mark.django_db
def test_name_resolves_to_production_and_pins_resolve_to_that_version():
    production = ModelVersionFactory(version="1", status=Status.PRODUCTION)
    draft = ModelVersionFactory(version="2", status=Status.DRAFT)

    assert registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION) == production
    assert registry.resolve("sentiment:2", task=Task.TEXT_CLASSIFICATION) == draft
    assert registry.resolve("sentiment", task=Task.EMBEDDINGS) is None


@pytest.mark.django_db
def test_archived_version_is_not_served():
    version = ModelVersionFactory(version="1", status=Status.PRODUCTION)

    version.archive()

    assert registry.resolve("sentiment", task=Task.TEXT_CLASSIFICATION) is None


@pytest.mark.django_db
def test_zero_shot_needs_prototypes_for_two_labels():
    version = ModelVersionFactory.build(config={"prototypes": {"ONLY": ["text"]}})

    with pytest.raises(ValidationError, match="at least two labels"):
        version.full_clean()


@pytest.mark.django_db
def test_zero_shot_cannot_serve_embeddings():
    version = ModelVersionFactory.build(task=Task.EMBEDDINGS, backend=Backend.ZERO_SHOT)

    with pytest.raises(ValidationError, match="cannot serve"):
        version.full_clean()


@pytest.mark.django_db
def test_bootstrap_is_idempotent_and_keeps_an_operators_promotion():
    call_command("bootstrap", verbosity=0)
    mine = ModelVersionFactory(version="mine")
    mine.promote()

    call_command("bootstrap", verbosity=0)

    assert ModelVersion.objects.count() == 4
    assert ModelVersion.objects.get(name="sentiment", status=Status.PRODUCTION) == mine
    assert ModelVersion.objects.get(name="embeddings").status == Status.PRODUCTION
    assert ModelVersion.objects.get(name="smollm2").provider.name == "local"
