"""A model version's life cycle: register, promote, archive.

Each writes its AuditEvent in the transaction of the change, so whoever makes it (the admin,
`bootstrap`, training, an experiment's promote-winner) leaves the same trail.
"""

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from gateway.models import AuditAction
from gateway.record import audit
from inference.models import ModelVersion, Status

if TYPE_CHECKING:
    from experiments.models import Experiment


def model_version_register(*, version: ModelVersion, actor: str, message: str = "") -> ModelVersion:
    """Validate and save a new (unsaved) version with its registration event."""
    if version.status == Status.PRODUCTION:
        # Production is reached through promotion, which steps the current version down and audits both.
        raise ValidationError({"status": "Register a version as draft or staging, then promote it."})
    version.full_clean()
    with transaction.atomic():
        version.save(force_insert=True)
        audit.record(
            actor=actor,
            action=AuditAction.REGISTER,
            model_version=version,
            message=message or f"Registered {version} as {version.get_status_display().lower()}.",
        )
    return version


def model_version_promote(
    *, version: ModelVersion, actor: str, experiment: "Experiment | None" = None, reason: str = ""
) -> list[ModelVersion]:
    """Make the version its name's production version; the one it replaces steps down to staging.

    Both get an event (`reason` completes the promotion's message); returns the versions stepped down.
    """
    with transaction.atomic():
        previous = version.promote()
        stepped_down = ", ".join(str(v) for v in previous) or "none"
        audit.record(
            actor=actor,
            action=AuditAction.PROMOTE,
            model_version=version,
            experiment=experiment,
            message=f"Promoted {version} to production{f' as {reason}' if reason else ''} "
            f"(previous production version: {stepped_down}).",
        )
        for old in previous:
            audit.record(
                actor=actor,
                action=AuditAction.DEMOTE,
                model_version=old,
                experiment=experiment,
                message=f"Stepped down to staging: {version} was promoted to production.",
            )
    return previous


def model_version_archive(*, version: ModelVersion, actor: str) -> None:
    """Stop serving the version (an archived production version leaves its name without one)."""
    was = version.get_status_display().lower()
    with transaction.atomic():
        version.archive()
        audit.record(
            actor=actor, action=AuditAction.ARCHIVE, model_version=version, message=f"Archived {version} (was {was})."
        )
