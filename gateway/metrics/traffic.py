"""Prometheus metrics of traffic control (to be exposed with the others on /metrics)."""

from prometheus_client import Counter

BUDGET_ALERTS = Counter(
    "gateway_budget_alerts_total",
    "Times a key's or a team's spend crossed its budget alert threshold (once per owner and period).",
    ["scope"],
)
