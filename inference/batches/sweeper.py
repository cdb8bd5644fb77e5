"""A thread in every worker process that requeues the work of stalled jobs (see
`services.batch_jobs_requeue_stalled` for why messages can be lost)."""

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection

from inference.batches import services

logger = logging.getLogger(__name__)


def start(**kwargs) -> None:
    """Connected to Celery's `worker_ready`: web processes never run it."""
    threading.Thread(target=_sweep_forever, name="batch-stall-sweeper", daemon=True).start()


def _sweep_forever() -> None:
    stalled_for = timedelta(seconds=settings.GATEWAY_BATCH_STALLED_AFTER_S)
    while True:
        time.sleep(settings.GATEWAY_BATCH_STALL_CHECK_S)
        try:
            services.batch_jobs_requeue_stalled(stalled_for=stalled_for)
        except Exception:
            logger.exception("Could not requeue stalled batch jobs; trying again later")
        finally:
            connection.close()
