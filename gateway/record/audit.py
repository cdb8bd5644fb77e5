"""The audit trail of model versions, experiments and API keys (gateway.models.AuditEvent)."""

from gateway.models import AuditEvent


def actor_of(user) -> str:
    return user.get_username() if user is not None and user.is_authenticated else "anonymous"


def record(*, actor: str, action: str, message: str, model_version=None, experiment=None, api_key=None) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor,
        action=action,
        message=message,
        model_version=model_version,
        experiment=experiment,
        api_key=api_key,
    )
