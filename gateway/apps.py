from django.apps import AppConfig, apps
from django.db.models.signals import post_delete, post_save

# What gateway/caching/snapshot.py keeps per process: a save or delete of any of these starts a new
# configuration generation.
SNAPSHOT_MODELS = (
    "gateway.APIKey",
    "gateway.Team",
    "gateway.FilterPattern",
    "inference.ModelVersion",
    "inference.Provider",
    "inference.RoutingRule",
    "inference.FallbackChain",
    "inference.FallbackStep",
    "experiments.Experiment",
    "experiments.Variant",
)


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway: keys and request log"

    def ready(self):
        from gateway import checks  # noqa: F401  (registers the deployment checks)
        from gateway.caching import snapshot

        for label in SNAPSHOT_MODELS:
            model = apps.get_model(label)
            post_save.connect(snapshot.changed, sender=model, dispatch_uid=f"snapshot-save-{label}")
            post_delete.connect(snapshot.changed, sender=model, dispatch_uid=f"snapshot-delete-{label}")
