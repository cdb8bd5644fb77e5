"""The model registry: providers, versions, routing rules and fallback chains, training runs, evaluations."""

from inference.models.evaluations import Evaluation
from inference.models.providers import Provider
from inference.models.traffic_rules import FallbackChain, FallbackStep, RoutingRule
from inference.models.training_runs import TrainingMethod, TrainingRun, TrainingStatus
from inference.models.versions import (
    BACKEND_TASKS,
    LOCAL_BACKENDS,
    Backend,
    CacheScope,
    ModelVersion,
    Runtime,
    Status,
    Task,
)

__all__ = [
    "BACKEND_TASKS",
    "LOCAL_BACKENDS",
    "Backend",
    "CacheScope",
    "Evaluation",
    "FallbackChain",
    "FallbackStep",
    "ModelVersion",
    "Provider",
    "RoutingRule",
    "Runtime",
    "Status",
    "Task",
    "TrainingMethod",
    "TrainingRun",
    "TrainingStatus",
]
