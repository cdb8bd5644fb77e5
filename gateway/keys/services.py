"""An API key's life cycle: create, revoke.

Each writes its AuditEvent in the transaction of the change, so a key made or revoked in the
admin or by `createapikey` leaves the same trail. The event's message names the key's prefix:
the record outlives the row.
"""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction

from gateway.models import APIKey, AuditAction, BudgetPeriod, Team
from gateway.record import audit

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


def api_key_create(
    *,
    name: str,
    owner: "AbstractBaseUser | None" = None,
    team: Team | None = None,
    endpoints: Sequence[str] = (),
    models: Sequence[str] = (),
    expires_at: datetime | None = None,
    is_active: bool = True,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    max_in_flight: int | None = None,
    may_pin_drafts: bool = False,
    budget_usd: Decimal | None = None,
    budget_period: str = BudgetPeriod.MONTH,
    budget_alert_percent: int = 80,
    actor: str,
) -> tuple[APIKey, str]:
    """Validate and create a key (ValidationError if invalid); the plaintext is returned here once."""
    fields = {
        "name": name,
        "owner": owner,
        "team": team,
        "allowed_endpoints": list(endpoints),
        "allowed_models": list(models),
        "expires_at": expires_at,
        "is_active": is_active,
        "requests_per_minute": requests_per_minute,
        "tokens_per_minute": tokens_per_minute,
        "max_in_flight": max_in_flight,
        "may_pin_drafts": may_pin_drafts,
        "budget_usd": budget_usd,
        "budget_period": budget_period,
        "budget_alert_percent": budget_alert_percent,
    }
    # The secret is made by create_key; validate everything else first.
    APIKey(**fields).full_clean(exclude=["prefix", "hashed_secret"])
    with transaction.atomic():
        key, plaintext = APIKey.objects.create_key(**fields)
        audit.record(
            actor=actor,
            action=AuditAction.KEY_CREATE,
            api_key=key,
            message=f"Created {key}: team {team or 'none'}, owner {owner or 'none'}, "
            f"endpoints {list(endpoints) or 'all'}, models {list(models) or 'all'}, "
            f"expires {expires_at.isoformat() if expires_at else 'never'}.",
        )
    return key, plaintext


def api_key_revoke(*, key: APIKey, actor: str) -> bool:
    """Revoke the key for good; False if it was revoked already (its event is then the earlier one)."""
    with transaction.atomic():
        # Lock the row so that of two revocations at once one revokes and audits.
        key.refresh_from_db(from_queryset=APIKey.objects.select_for_update())
        if key.is_revoked:
            return False
        key.revoke()
        audit.record(
            actor=actor,
            action=AuditAction.KEY_REVOKE,
            api_key=key,
            message=f"Revoked {key}; it is refused from the next request on.",
        )
    return True
