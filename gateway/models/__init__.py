"""Keys and teams, the request log, the audit trail and budget alerts."""

from gateway.models.audit import AuditAction, AuditEvent
from gateway.models.budget_alerts import BudgetAlert
from gateway.models.filters import FilterPattern

# The key validators are named by migrations as gateway.models.<name>.
from gateway.models.keys import (
    ENDPOINT_SCOPES,
    APIKey,
    APIKeyManager,
    BudgetPeriod,
    LimitsAndBudget,
    Team,
    _validate_endpoint_scopes,
    _validate_scopes,
)
from gateway.models.request_log import RequestLog

__all__ = [
    "ENDPOINT_SCOPES",
    "APIKey",
    "APIKeyManager",
    "AuditAction",
    "AuditEvent",
    "BudgetAlert",
    "BudgetPeriod",
    "FilterPattern",
    "LimitsAndBudget",
    "RequestLog",
    "Team",
    "_validate_endpoint_scopes",
    "_validate_scopes",
]
