"""The process-wide pool of loaded models: each version loads once and serves every thread."""

import logging
import threading

import torch
from django.conf import settings

from inference.backends import load_runner
from inference.batching import MicroBatcher
from inference.models import LOCAL_BACKENDS, ModelVersion, Status

logger = logging.getLogger(__name__)

if settings.TORCH_THREADS:
    torch.set_num_threads(settings.TORCH_THREADS)

# version pk -> (updated_at when loaded, batcher); an edited version reloads on next use.
_batchers: dict[int, tuple[object, MicroBatcher]] = {}
_lock = threading.Lock()
_loading: set[int] = set()  # version pks being loaded off the request path


def batcher_for(version: ModelVersion) -> MicroBatcher:
    entry = _batchers.get(version.pk)
    if entry and entry[0] == version.updated_at:
        return entry[1]
    with _lock:
        entry = _batchers.get(version.pk)
        if entry and entry[0] == version.updated_at:
            return entry[1]
        logger.info("Loading model %s from %s", version, version.source)
        batcher = MicroBatcher(
            load_runner(version),
            name=str(version),
            max_batch_size=version.max_batch_size,
            max_wait_s=version.max_batch_wait_ms / 1000,
            queue_size=settings.GATEWAY_INFERENCE_QUEUE_SIZE,
        )
        if entry:
            entry[1].stop()
        _batchers[version.pk] = (version.updated_at, batcher)
        return batcher


def is_loaded(version: ModelVersion) -> bool:
    """Whether this process holds the version, at any revision: an edited version is reloaded by
    its next request, and readiness must not drop every node at once when an operator saves one."""
    return version.pk in _batchers


def load_in_background(version: ModelVersion) -> None:
    """Start loading a version this process does not hold yet, so that a node whose readiness
    waits on it becomes ready without traffic (a balancer sends none to an unready node)."""
    if version.pk in _batchers or version.pk in _loading:
        return
    _loading.add(version.pk)

    def load() -> None:
        try:
            batcher_for(version)
        except Exception:
            logger.exception("Could not load %s", version)
        finally:
            _loading.discard(version.pk)

    threading.Thread(target=load, name=f"load-{version.pk}", daemon=True).start()


def has_loaded_models() -> bool:
    return bool(_batchers)


def serving_versions() -> list[ModelVersion]:
    """The versions this process should hold: every local production version."""
    return list(ModelVersion.objects.filter(status=Status.PRODUCTION, backend__in=LOCAL_BACKENDS))


def warm_up() -> None:
    """Load and run every production version once, so no client waits for a model to load."""
    for version in serving_versions():
        try:
            batcher_for(version).submit("warm up", timeout_s=120)
        except Exception:
            logger.exception("Could not warm up %s", version)
