from gateway.caching import snapshot
from inference.models import ModelVersion, Status


def resolve(model_ref: str, *, task: str) -> ModelVersion | None:
    """`name` means its production version; `name:version` pins any version not archived."""
    return snapshot.read(("version", model_ref, task), lambda: _resolve(model_ref, task))


def _resolve(model_ref: str, task: str) -> ModelVersion | None:
    name, _, version = model_ref.partition(":")
    versions = ModelVersion.objects.filter(name=name, task=task).select_related("provider")
    if version:
        return versions.filter(version=version).exclude(status=Status.ARCHIVED).first()
    return versions.filter(status=Status.PRODUCTION).first()
